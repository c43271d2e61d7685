// Package chsink batches rows read from Kafka into ClickHouse with no loss
// and no duplicates, on every server version eprostream supports (18.16 has
// no insert deduplication tokens, so the guarantee is the sink's own).
//
// Rows are buffered per source topic partition ("lane") and inserted with
// PrepareBatch over the native protocol when a lane reaches MaxRows or its
// oldest row is MaxDelay old; the insert also takes what the table's idle
// lanes hold, up to MaxRows in all, since ClickHouse takes a few large
// inserts much faster than many small ones; the lanes of a table that are
// due together go into one insert. A lane is in one insert at a
// time, so its batches reach the table in offset order, and each row's
// commit callback (goka's DeferCommit) is called only
// after ClickHouse acknowledged the insert, so Kafka offsets never run ahead
// of the warehouse. After a crash the uncommitted tail is read again; the
// sink then skips
//   - offsets at or below the highest offset of that partition already in
//     the table (loaded when a lane is first used, and again after
//     Reassigned: a rebalance), and
//   - rows whose id (message_id, alert_id) is already in the table's id
//     index, which also drops duplicates that arrive at other offsets.
//     While Reassigned says this instance holds every source partition
//     (nobody else writes the table), a Bloom filter of the index's ids,
//     loaded at the first insert and after every rebalance and fed with
//     every id sent since, tells which ids cannot be stored yet; only the
//     others (about 0.1 % of new ids, plus real repeats) are looked up.
//     Otherwise, or while the filter cannot be loaded, every id is.
//
// ClickHouse down or slow: an insert is retried with backoff until it
// succeeds; lanes keep their rows, and once MaxBuffered rows wait, Add
// blocks, so the groups stop pulling from Kafka instead of buffering without
// bound. A row the client refuses to encode is handed to Reject (the DLQ)
// and the batch goes on without it.
package chsink
