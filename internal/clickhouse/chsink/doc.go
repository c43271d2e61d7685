// Package chsink batches rows read from Kafka into ClickHouse with no loss
// and no duplicates, on every server version eprostream supports (18.16 has
// no insert deduplication tokens, so the guarantee is the sink's own).
//
// Rows are buffered per source topic partition ("lane") and inserted with
// PrepareBatch over the native protocol when a lane reaches MaxRows or its
// oldest row is MaxDelay old. A lane inserts one batch at a time, in offset
// order, and each row's commit callback (goka's DeferCommit) is called only
// after ClickHouse acknowledged the insert, so Kafka offsets never run ahead
// of the warehouse. After a crash the uncommitted tail is read again; the
// sink then skips
//   - offsets at or below the highest offset of that partition already in
//     the table (loaded when a lane is first used, and again after
//     Reassigned: a rebalance), and
//   - rows whose id (message_id, alert_id) is already in the table's id
//     index, which also drops duplicates that arrive at other offsets.
//
// ClickHouse down or slow: an insert is retried with backoff until it
// succeeds; lanes keep their rows, and once MaxBuffered rows wait, Add
// blocks, so the groups stop pulling from Kafka instead of buffering without
// bound. A row the client refuses to encode is handed to Reject (the DLQ)
// and the batch goes on without it.
package chsink
