#ifndef POOL_STAT_H
#define POOL_STAT_H

/*
 * Counters and gauges written by one thread (a worker, on its own objects)
 * and read by another (the admin endpoint, at scrape time). Relaxed atomic
 * loads and stores: on x86-64 they are the plain moves a ++ would be, with
 * no locked instruction, and a reader never sees a torn value. Only the
 * owning thread may use the writers. Fields are `_Atomic uint64_t`.
 */

#include <stdatomic.h>
#include <stdint.h>

#define POOL_STAT_GET(f) atomic_load_explicit(&(f), memory_order_relaxed)
#define POOL_STAT_SET(f, v) atomic_store_explicit(&(f), (v), memory_order_relaxed)
#define POOL_STAT_ADD(f, n) POOL_STAT_SET(f, POOL_STAT_GET(f) + (uint64_t)(n))
#define POOL_STAT_SUB(f, n) POOL_STAT_SET(f, POOL_STAT_GET(f) - (uint64_t)(n))
#define POOL_STAT_INC(f) POOL_STAT_ADD(f, 1)
#define POOL_STAT_DEC(f) POOL_STAT_SUB(f, 1)

#endif
