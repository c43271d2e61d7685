// Package hotcache is a cache-aside, read-through cache in Redis for hot
// views (site dashboards, study summaries) and reference data.
//
// Get looks in Redis; on a miss it calls the caller's loader (the backing
// store), writes what it got back and returns it. Three classic failures of
// such caches are guarded against:
//
// Penetration: requests for ids that do not exist would all miss and all
// reach the store. Two guards: every id first passes Config.Valid, and an id
// that fails gets ErrBadKey without Redis or the store seeing it; an id the
// store does not have (the loader returns ErrNotFound) is remembered as a
// "not found" entry for Config.NegativeTTL, so a flood of lookups for it
// reaches the store at most once per NegativeTTL. A writer that creates an
// entity calls Invalidate so it is not "not found" until then.
//
// Breakdown: when a hot key expires, every request in every process would
// rebuild it at once. Within a process, concurrent Gets of one key share one
// lookup (singleflight). Across processes, the rebuild is done under a short
// Redis lock (bsm/redislock: SET NX PX with a random token, released by
// compare-and-delete). The others poll the key every Config.Poll for the
// winner's value. A winner that dies frees the key when its lock expires
// (Config.LockTTL), and the next waiter rebuilds. A waiter still without a
// value after Config.Wait queries the store itself, so a stuck rebuild
// delays readers but does not fail them; at most one such query per
// process and key.
//
// Avalanche: keys written together (a cold start, a warm-up) would expire
// together. Each write draws its TTL from Config.TTL ± Config.Jitter·TTL.
// "Not found" entries keep the plain NegativeTTL: they guard ids that do not
// exist, and a bound that holds exactly is worth more there.
//
// Every key has a TTL: values (jittered TTL), "not found" entries
// (NegativeTTL) and locks (LockTTL). Keys are
//
//	prefix + "hot:" + name + ":val:" + key    value or "not found"
//	prefix + "hot:" + name + ":lock:" + key   rebuild lock
//
// When Redis cannot be reached (or does not answer within
// Config.RedisTimeout), Get calls the loader directly, still one call per key
// at a time within the process, and counts the lookup as a fallback: reads
// do not fail because the cache is down. Counters for hits, misses, "not
// found" hits, fallbacks and loads are in Stats and, when Config.Registry is
// set, in Prometheus as eprostream_hotcache_*{cache=name}.
//
// Loaders of one key must be interchangeable: concurrent Gets share the
// first caller's loader. A loader gets a context that ends after LockTTL, so
// a rebuild does not outlive its lock; it keeps the first caller's values but
// not its cancellation, because other callers wait for the same result.
package hotcache
