-- Nothing to revert: the up migration changes nothing.
SELECT 1;
