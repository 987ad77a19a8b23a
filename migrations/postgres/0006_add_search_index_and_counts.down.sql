-- Nothing to revert: the up migration changes nothing.
select 1;
