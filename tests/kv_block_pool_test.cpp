// KvBlockPool: ids are distinct and reused, block id lives at base + id * block_bytes, a full pool refuses
// (all or nothing) without disturbing blocks in use, the pages of free blocks really leave RSS, in-use
// neighbours survive a release, and several threads can share the pool.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kv/kv_block_pool.h"

namespace razor {
namespace {

size_t RssBytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

float* Floats(KvBlockPool& pool, int32_t id) { return reinterpret_cast<float*>(pool.data(id)); }
void FillBlock(float* b, size_t floats, float tag) {
  for (size_t i = 0; i < floats; ++i) b[i] = tag + static_cast<float>(i % 7);
}
bool BlockHas(const float* b, size_t floats, float tag) {
  for (size_t i = 0; i < floats; ++i)
    if (b[i] != tag + static_cast<float>(i % 7)) return false;
  return true;
}

TEST(KvBlockPoolTest, HandsOutDistinctIdsAndReusesFreedOnes) {
  KvBlockPool pool(4096, {.capacity_bytes = 64 * 4096, .release_threshold_bytes = size_t{1} << 30});
  EXPECT_EQ(pool.capacity_blocks(), 64u);
  std::vector<int32_t> ids;
  ASSERT_TRUE(pool.Allocate(20, &ids));
  ASSERT_EQ(ids.size(), 20u);
  std::set<int32_t> unique(ids.begin(), ids.end());
  EXPECT_EQ(unique.size(), 20u);
  for (int32_t id : ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 64);
    EXPECT_EQ(pool.data(id), pool.base() + size_t(id) * 4096);
  }
  EXPECT_EQ(pool.bytes_in_use(), 20u * 4096);
  pool.Free(ids.data() + 15, 5);
  EXPECT_EQ(pool.blocks_in_use(), 15u);
  std::vector<int32_t> again;
  ASSERT_TRUE(pool.Allocate(5, &again));
  EXPECT_EQ(std::set<int32_t>(again.begin(), again.end()), std::set<int32_t>(ids.begin() + 15, ids.end()));
  pool.Free(again.data(), again.size());
  pool.Free(ids.data(), 15);
  EXPECT_EQ(pool.bytes_in_use(), 0u);
}

// A fixed capacity: the request that does not fit takes nothing, the blocks in use keep their data, and the
// pool serves again once blocks come back.
TEST(KvBlockPoolTest, ExhaustionIsAllOrNothing) {
  const size_t floats = 1024;
  KvBlockPool pool(floats * sizeof(float), {.capacity_bytes = 10 * floats * sizeof(float)});
  std::vector<int32_t> a;
  ASSERT_TRUE(pool.Allocate(7, &a));
  for (size_t i = 0; i < a.size(); ++i) FillBlock(Floats(pool, a[i]), floats, float(i));
  std::vector<int32_t> b = {-5};
  EXPECT_FALSE(pool.Allocate(4, &b));
  EXPECT_EQ(b, std::vector<int32_t>{-5});  // untouched
  EXPECT_EQ(pool.blocks_in_use(), 7u);
  EXPECT_EQ(pool.blocks_free(), 3u);
  ASSERT_TRUE(pool.Allocate(3, &b));
  EXPECT_FALSE(pool.Allocate(1, &b));
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(BlockHas(Floats(pool, a[i]), floats, float(i)));
  pool.Free(a.data(), 2);
  EXPECT_TRUE(pool.Allocate(2, &b));
  pool.Free(a.data() + 2, a.size() - 2);
  pool.Free(b.data() + 1, b.size() - 1);
  EXPECT_EQ(pool.blocks_in_use(), 0u);
}

TEST(KvBlockPoolTest, ReleasesOnlyAboveThreshold) {
  KvBlockPool pool(4096, {.capacity_bytes = 64 * 4096, .release_threshold_bytes = 10 * 4096});
  std::vector<int32_t> ids;
  ASSERT_TRUE(pool.Allocate(32, &ids));
  for (int32_t id : ids) std::memset(pool.data(id), 1, 4096);
  pool.Free(ids.data(), 8);  // under the threshold: kept resident for reuse
  EXPECT_EQ(pool.bytes_free_resident(), 8u * 4096);
  pool.Free(ids.data() + 8, 8);  // 16 free blocks > 10: released
  EXPECT_EQ(pool.bytes_free_resident(), 0u);
  EXPECT_EQ(pool.bytes_in_use(), 16u * 4096);
  EXPECT_EQ(pool.data(ids[0])[0], 0);  // released pages read back as zero
  EXPECT_EQ(pool.data(ids[20])[0], 1);  // in-use data kept
  pool.Free(ids.data() + 16, 16);
}

// Blocks smaller than a page: releasing free neighbours must not touch the data of blocks in use.
TEST(KvBlockPoolTest, ReleaseKeepsDataOfBlocksInUse) {
  const size_t floats = 24;  // 96-byte blocks, many per page
  KvBlockPool pool(floats * sizeof(float), {.capacity_bytes = 8000 * floats * 4, .release_threshold_bytes = 0});
  std::vector<int32_t> ids;
  ASSERT_TRUE(pool.Allocate(3000, &ids));
  for (size_t i = 0; i < ids.size(); ++i) FillBlock(Floats(pool, ids[i]), floats, float(i));
  auto kept = [](size_t i) { return i % 97 == 0 || (i / 50) % 3 == 1; };
  std::vector<int32_t> drop;
  for (size_t i = 0; i < ids.size(); ++i)
    if (!kept(i)) drop.push_back(ids[i]);
  pool.Free(drop.data(), drop.size());  // threshold 0: released at once
  pool.ReleaseFreeMemory();
  for (size_t i = 0; i < ids.size(); ++i)
    if (kept(i)) ASSERT_TRUE(BlockHas(Floats(pool, ids[i]), floats, float(i))) << i;
  std::vector<int32_t> more;  // released blocks are usable again
  ASSERT_TRUE(pool.Allocate(drop.size(), &more));
  for (size_t i = 0; i < more.size(); ++i) FillBlock(Floats(pool, more[i]), floats, -float(i));
  for (size_t i = 0; i < more.size(); ++i) ASSERT_TRUE(BlockHas(Floats(pool, more[i]), floats, -float(i)));
  for (size_t i = 0; i < ids.size(); ++i)
    if (kept(i)) ASSERT_TRUE(BlockHas(Floats(pool, ids[i]), floats, float(i))) << i;
}

// ~200 MB touched, then 7 of every 8 blocks freed: RSS drops by most of it through madvise.
TEST(KvBlockPoolTest, FreedMemoryLeavesRss) {
  const size_t block = 64 * 1024, n = 3200;  // 200 MiB
  KvBlockPool pool(block, {.capacity_bytes = 2 * n * block});  // 16 MiB threshold
  const size_t rss_empty = RssBytes();
  std::vector<int32_t> ids;
  ASSERT_TRUE(pool.Allocate(n, &ids));
  EXPECT_LT(RssBytes(), rss_empty + (size_t{16} << 20));  // reserved, not resident
  for (int32_t id : ids) std::memset(pool.data(id), 1, block);
  const size_t rss_full = RssBytes();
  std::vector<int32_t> keep, drop;
  for (size_t i = 0; i < n; ++i) (i % 8 == 0 ? keep : drop).push_back(ids[i]);
  pool.Free(drop.data(), drop.size());
  const size_t rss_after = RssBytes();
  const size_t freed = drop.size() * block;
  EXPECT_GE(static_cast<double>(rss_full - rss_after), 0.85 * static_cast<double>(freed))
      << "RSS " << (rss_full >> 20) << " -> " << (rss_after >> 20) << " MiB, freed " << (freed >> 20) << " MiB";
  EXPECT_LE(pool.bytes_free_resident(), size_t{16} << 20);
  for (int32_t id : keep) ASSERT_EQ(pool.data(id)[block - 1], 1);
  pool.Free(keep.data(), keep.size());
}

TEST(KvBlockPoolTest, SharedByThreads) {
  KvBlockPool pool(256, {.capacity_bytes = 256 * 256, .release_threshold_bytes = 4096});
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::vector<int32_t> mine;
      for (int it = 0; it < 2000; ++it) {
        if (mine.empty() || rng() % 2) {
          const size_t n = 1 + rng() % 8, at = mine.size();
          if (!pool.Allocate(n, &mine)) continue;  // 4 threads x <= 64 blocks fit; a refusal is allowed anyway
          for (size_t i = at; i < mine.size(); ++i) FillBlock(Floats(pool, mine[i]), 64, float(t * 1000));
        } else {
          const size_t n = std::min<size_t>(mine.size(), 1 + rng() % 8);
          for (size_t i = mine.size() - n; i < mine.size(); ++i)
            if (!BlockHas(Floats(pool, mine[i]), 64, float(t * 1000))) ++failures[t];
          pool.Free(mine.data() + mine.size() - n, n);
          mine.resize(mine.size() - n);
        }
        if (mine.size() > 48) {
          pool.Free(mine.data(), mine.size());
          mine.clear();
        }
      }
      for (int32_t id : mine)
        if (!BlockHas(Floats(pool, id), 64, float(t * 1000))) ++failures[t];
      pool.Free(mine.data(), mine.size());
    });
  for (auto& th : threads) th.join();
  for (int f : failures) EXPECT_EQ(f, 0);
  EXPECT_EQ(pool.bytes_in_use(), 0u);
}

}  // namespace
}  // namespace razor

namespace razor {
namespace {

// A double free would hand one block to two sequences (each overwriting the other's K/V): it must stop the
// process with a message in every build, not only under assert.
TEST(KvBlockPoolDeathTest, FreeingABlockTwiceOrAForeignIdAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        KvBlockPool pool(4096, KvBlockPoolOptions{.capacity_bytes = 4096 * 8});
        std::vector<int32_t> ids;
        ASSERT_TRUE(pool.Allocate(2, &ids));
        pool.Free(ids.data(), 1);
        pool.Free(ids.data(), 1);
      },
      "freed twice");
  EXPECT_DEATH(
      {
        KvBlockPool pool(4096, KvBlockPoolOptions{.capacity_bytes = 4096 * 8});
        const int32_t never = 5;
        pool.Free(&never, 1);
      },
      "not from this pool");
}

// The peak counts the most blocks held at once (not allocations summed), and ResetPeak starts it from now.
TEST(KvBlockPoolTest, PeakIsTheMostBlocksHeldAtOnce) {
  KvBlockPool pool(4096, {.capacity_bytes = 64 * 4096});
  std::vector<int32_t> a, b, c;
  ASSERT_TRUE(pool.Allocate(10, &a));
  pool.Free(a.data() + 4, 6);  // 4 held
  ASSERT_TRUE(pool.Allocate(3, &b));  // 7 held
  EXPECT_EQ(pool.peak_blocks_in_use(), 10u);
  EXPECT_EQ(pool.peak_bytes_in_use(), 10u * 4096);
  pool.ResetPeak();
  EXPECT_EQ(pool.peak_blocks_in_use(), 7u);
  pool.Free(a.data(), 4);
  ASSERT_TRUE(pool.Allocate(5, &c));  // 8 held
  EXPECT_EQ(pool.peak_blocks_in_use(), 8u);
  pool.Free(b.data(), b.size());
  pool.Free(c.data(), c.size());
  EXPECT_EQ(pool.blocks_in_use(), 0u);
  EXPECT_EQ(pool.peak_blocks_in_use(), 8u);
}

}  // namespace
}  // namespace razor
