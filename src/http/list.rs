//! The list envelope (API.md "Lists") and the glue between raw query parameters, the
//! domain's `ListQuery`, and cursors.

use serde::Serialize;
use utoipa::ToSchema;

use super::cursor;
use super::error::ApiError;
use crate::domain::list::{ListQuery, Page, Paging, Position, RawPaging, SortField, Sortable};
use crate::domain::validation::{FieldError, ValidationErrors};

/// Paging facts of one list response.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "page": 1, "page_size": 10, "total_items": 12, "total_pages": 2,
    "has_next": true, "has_prev": false, "next_cursor": "eyJ2IjoxLCJrIjpbMTBdfQ.k3Jx0f1n2QmH7c1Z"
}))]
pub struct Pagination {
    /// Page number; null in cursor mode.
    pub page: Option<u32>,
    /// Items per page.
    pub page_size: u32,
    /// Items matching the filters.
    pub total_items: u64,
    /// Pages at this page size.
    pub total_pages: u64,
    /// Whether another page follows.
    pub has_next: bool,
    /// Whether a page precedes (always true in cursor mode).
    pub has_prev: bool,
    /// Opaque token for the next page (`cursor=`); null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of items and its pagination.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ListEnvelope<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Where this page is.
    pub pagination: Pagination,
}

/// A validated list request with the scope its cursors are bound to.
#[derive(Debug, Clone)]
pub struct ListRequest<F, Filter> {
    /// What the store is asked for.
    pub query: ListQuery<F, Filter>,
    scope: String,
}

impl<F: SortField, Filter> ListRequest<F, Filter> {
    /// Validates paging against `filter` (already parsed; its problems are in `errors`),
    /// decoding the cursor, if any, for this endpoint, order and filter set.
    ///
    /// # Errors
    /// 422 listing every problem, including a cursor from elsewhere or tampered with.
    pub fn parse(
        endpoint: &str,
        raw: RawPaging<'_>,
        filter: Filter,
        filter_canonical: &str,
        mut errors: ValidationErrors,
    ) -> Result<Self, ApiError> {
        let paging = Paging::<F>::parse(raw, &mut errors);
        let Some(paging) = paging.filter(|_| errors.is_empty()) else {
            return Err(errors.into());
        };
        let scope = cursor::scope(endpoint, &paging.sort.canonical(), filter_canonical);
        let position = match paging.cursor {
            Some(token) => {
                Position::After(cursor::decode(token, &scope, &paging.sort).ok_or_else(|| {
                    FieldError::new(
                        "cursor",
                        "is invalid, or was issued for another endpoint, sort or filter",
                    )
                })?)
            }
            None => Position::Page(paging.page.unwrap_or(1)),
        };
        Ok(Self {
            query: ListQuery {
                sort: paging.sort,
                page_size: paging.page_size,
                position,
                filter,
            },
            scope,
        })
    }

    /// Builds the envelope for `page`, mapping each item with `to_wire`.
    pub fn envelope<T, O>(&self, page: Page<T>, to_wire: impl Fn(T) -> O) -> ListEnvelope<O>
    where
        T: Sortable<F>,
    {
        let next_cursor = page
            .has_next
            .then(|| page.items.last())
            .flatten()
            .map(|last| cursor::encode(&self.scope, &self.query.sort.values_of(last)));
        let size = u64::from(self.query.page_size);
        let (page_number, has_prev) = match self.query.position {
            Position::Page(n) => (Some(n), n > 1),
            Position::After(_) => (None, true),
        };
        ListEnvelope {
            pagination: Pagination {
                page: page_number,
                page_size: self.query.page_size,
                total_items: page.total_items,
                total_pages: page.total_items.div_ceil(size),
                has_next: page.has_next,
                has_prev,
                next_cursor,
            },
            items: page.items.into_iter().map(to_wire).collect(),
        }
    }
}
