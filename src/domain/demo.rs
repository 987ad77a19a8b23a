//! The original catalog's demo data (development only), shared by every backend: each
//! inserts it through [`crate::storage::Store::seed_demo_data`], once per database.

use super::artist::NewArtist;
use super::song::{NewSong, SongFields};
use super::validation::ValidationErrors;

/// A demo song: title, release date, distance, URL.
type DemoSong = (&'static str, &'static str, f64, &'static str);

/// `(artist, songs)` from the original service.
const DEMO: &[(&str, &[DemoSong])] = &[
    (
        "David Bowie",
        &[
            (
                "Space Oddity",
                "1969-07-11",
                238_900.0,
                "https://www.youtube.com/watch?v=iYYRH4apXDo",
            ),
            (
                "Starman",
                "1972-04-28",
                384_400.0,
                "https://www.youtube.com/watch?v=tRcPA7Fzebw",
            ),
        ],
    ),
    (
        "The Beatles",
        &[(
            "Across the Universe",
            "1970-02-06",
            40_000_000.0,
            "https://www.youtube.com/watch?v=90M60PzmxEE",
        )],
    ),
    (
        "Elton John",
        &[(
            "Rocket Man",
            "1972-04-17",
            384_400.0,
            "https://www.youtube.com/watch?v=DtVBCG6ThDk",
        )],
    ),
    (
        "Queen",
        &[(
            "'39",
            "1975-11-21",
            9_460_730_472_580.8,
            "https://www.youtube.com/watch?v=kn5xkFEEw5I",
        )],
    ),
    (
        "Pink Floyd",
        &[(
            "Astronomy Domine",
            "1967-08-05",
            4_000_000.0,
            "https://www.youtube.com/watch?v=pJh9OLlXenM",
        )],
    ),
];

/// One demo artist and its songs. The songs carry no artist id: the backend sets each to
/// the id the artist receives.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoArtist {
    /// The artist.
    pub artist: NewArtist,
    /// Its songs.
    pub songs: Vec<NewSong>,
}

/// The demo catalog, validated by the same rules as any client's input.
///
/// # Errors
/// Never in practice: the data is constant, and a unit test parses it.
pub fn catalog() -> Result<Vec<DemoArtist>, ValidationErrors> {
    DEMO.iter()
        .map(|(name, songs)| {
            Ok(DemoArtist {
                artist: NewArtist::parse(name)?,
                songs: songs
                    .iter()
                    .map(|(title, released, distance, url)| {
                        NewSong::parse(SongFields {
                            title,
                            artist_id: None,
                            release_date: Some(released),
                            url: Some(url),
                            distance: Some(*distance),
                        })
                    })
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog_is_valid_and_complete() {
        let catalog = catalog().unwrap();

        assert_eq!(catalog.len(), 5);
        assert_eq!(catalog.iter().map(|a| a.songs.len()).sum::<usize>(), 6);
    }
}
