// KvBlockPool: blocks are distinct and reused, slabs are unmapped when wholly free, the pages of free
// blocks really leave RSS, in-use neighbours survive a release, and several threads can share the pool.
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

void FillBlock(float* b, size_t floats, float tag) {
  for (size_t i = 0; i < floats; ++i) b[i] = tag + static_cast<float>(i % 7);
}
bool BlockHas(const float* b, size_t floats, float tag) {
  for (size_t i = 0; i < floats; ++i)
    if (b[i] != tag + static_cast<float>(i % 7)) return false;
  return true;
}

TEST(KvBlockPoolTest, HandsOutDistinctBlocksAndReusesFreedOnes) {
  KvBlockPool pool(4096, {.slab_bytes = 16 * 4096, .release_threshold_bytes = size_t{1} << 30});
  EXPECT_EQ(pool.blocks_per_slab(), 16u);
  std::vector<float*> blocks;
  ASSERT_TRUE(pool.Allocate(20, &blocks));
  ASSERT_EQ(blocks.size(), 20u);
  EXPECT_EQ(pool.bytes_in_use(), 20u * 4096);
  EXPECT_EQ(pool.slab_count(), 2u);
  EXPECT_EQ(pool.bytes_reserved(), 2u * 16 * 4096);
  std::set<float*> distinct(blocks.begin(), blocks.end());
  EXPECT_EQ(distinct.size(), 20u);
  for (size_t i = 0; i < blocks.size(); ++i) FillBlock(blocks[i], 1024, float(i * 10));
  for (size_t i = 0; i < blocks.size(); ++i) EXPECT_TRUE(BlockHas(blocks[i], 1024, float(i * 10))) << i;
  pool.Free(blocks.data() + 15, 5);
  EXPECT_EQ(pool.bytes_in_use(), 15u * 4096);
  EXPECT_EQ(pool.bytes_free_resident(), 5u * 4096);
  std::vector<float*> again;
  ASSERT_TRUE(pool.Allocate(5, &again));
  EXPECT_EQ(pool.slab_count(), 2u);  // reused, no new slab
  for (float* b : again) EXPECT_TRUE(std::set<float*>(blocks.begin() + 15, blocks.end()).count(b));
  pool.Free(again.data(), again.size());
  pool.Free(blocks.data(), 15);
  EXPECT_EQ(pool.bytes_in_use(), 0u);
  pool.ReleaseFreeMemory();
  EXPECT_EQ(pool.slab_count(), 0u);
  EXPECT_EQ(pool.bytes_reserved(), 0u);
}

TEST(KvBlockPoolTest, ReleasesOnlyAboveThreshold) {
  KvBlockPool pool(4096, {.slab_bytes = 8 * 4096, .release_threshold_bytes = 10 * 4096});
  std::vector<float*> blocks;
  ASSERT_TRUE(pool.Allocate(32, &blocks));
  EXPECT_EQ(pool.slab_count(), 4u);
  pool.Free(blocks.data(), 8);  // one whole slab, under the threshold: kept for reuse
  EXPECT_EQ(pool.slab_count(), 4u);
  EXPECT_EQ(pool.bytes_free_resident(), 8u * 4096);
  pool.Free(blocks.data() + 8, 8);  // 16 free blocks > 10: two wholly free slabs go back
  EXPECT_EQ(pool.slab_count(), 2u);
  EXPECT_EQ(pool.bytes_free_resident(), 0u);
  EXPECT_EQ(pool.bytes_in_use(), 16u * 4096);
  pool.Free(blocks.data() + 16, 16);
}

// Blocks smaller than a page: releasing free neighbours must not touch the data of blocks in use.
TEST(KvBlockPoolTest, ReleaseKeepsDataOfBlocksInUse) {
  const size_t floats = 24;  // 96-byte blocks, many per page
  KvBlockPool pool(floats * sizeof(float), {.slab_bytes = 64 * 1024, .release_threshold_bytes = 0});
  std::vector<float*> blocks;
  ASSERT_TRUE(pool.Allocate(3000, &blocks));
  for (size_t i = 0; i < blocks.size(); ++i) FillBlock(blocks[i], floats, float(i));
  std::vector<float*> keep, drop;
  for (size_t i = 0; i < blocks.size(); ++i) ((i % 97 == 0 || (i / 50) % 3 == 1) ? keep : drop).push_back(blocks[i]);
  pool.Free(drop.data(), drop.size());  // threshold 0: released at once
  pool.ReleaseFreeMemory();
  for (size_t i = 0; i < blocks.size(); ++i)
    if (i % 97 == 0 || (i / 50) % 3 == 1) {
      ASSERT_TRUE(BlockHas(blocks[i], floats, float(i))) << i;
    }
  std::vector<float*> more;  // released blocks are usable again
  ASSERT_TRUE(pool.Allocate(drop.size(), &more));
  for (size_t i = 0; i < more.size(); ++i) FillBlock(more[i], floats, -float(i));
  for (size_t i = 0; i < more.size(); ++i) ASSERT_TRUE(BlockHas(more[i], floats, -float(i)));
  for (size_t i = 0; i < blocks.size(); ++i)
    if (i % 97 == 0 || (i / 50) % 3 == 1) {
      ASSERT_TRUE(BlockHas(blocks[i], floats, float(i))) << i;
    }
  pool.Free(more.data(), more.size());
  pool.Free(keep.data(), keep.size());
  EXPECT_EQ(pool.bytes_in_use(), 0u);
}

// ~200 MB touched, then 7 of every 8 blocks freed (so no slab is wholly free): RSS drops by most of it
// through madvise; freeing the rest unmaps every slab.
TEST(KvBlockPoolTest, FreedMemoryLeavesRss) {
  const size_t block = 64 * 1024, n = 3200;  // 200 MiB
  KvBlockPool pool(block);  // defaults: 4 MiB slabs, 16 MiB threshold
  std::vector<float*> blocks;
  ASSERT_TRUE(pool.Allocate(n, &blocks));
  for (float* b : blocks) std::memset(b, 1, block);
  const size_t rss_full = RssBytes();
  std::vector<float*> keep, drop;
  for (size_t i = 0; i < n; ++i) (i % 8 == 0 ? keep : drop).push_back(blocks[i]);
  pool.Free(drop.data(), drop.size());
  const size_t rss_after = RssBytes();
  const size_t freed = drop.size() * block;
  RecordProperty("rss_drop_mb", std::to_string((rss_full - rss_after) >> 20));
  EXPECT_GT(rss_full, rss_after);
  EXPECT_GE(static_cast<double>(rss_full - rss_after), 0.85 * static_cast<double>(freed))
      << "RSS " << (rss_full >> 20) << " -> " << (rss_after >> 20) << " MiB, freed " << (freed >> 20) << " MiB";
  EXPECT_LE(pool.bytes_free_resident(), size_t{16} << 20);
  for (float* b : keep) ASSERT_EQ(reinterpret_cast<unsigned char*>(b)[block - 1], 1);
  pool.Free(keep.data(), keep.size());
  EXPECT_EQ(pool.slab_count(), 0u);  // all free: above the threshold, every slab unmapped
}

TEST(KvBlockPoolTest, SharedByThreads) {
  KvBlockPool pool(256, {.slab_bytes = 8192, .release_threshold_bytes = 4096});
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::vector<float*> mine;
      for (int it = 0; it < 2000; ++it) {
        if (mine.empty() || rng() % 2) {
          const size_t n = 1 + rng() % 8, at = mine.size();
          if (!pool.Allocate(n, &mine)) ++failures[t];
          for (size_t i = at; i < mine.size(); ++i) FillBlock(mine[i], 64, float(t * 1000));
        } else {
          const size_t n = std::min<size_t>(mine.size(), 1 + rng() % 8);
          for (size_t i = mine.size() - n; i < mine.size(); ++i)
            if (!BlockHas(mine[i], 64, float(t * 1000))) ++failures[t];
          pool.Free(mine.data() + mine.size() - n, n);
          mine.resize(mine.size() - n);
        }
      }
      for (float* b : mine)
        if (!BlockHas(b, 64, float(t * 1000))) ++failures[t];
      pool.Free(mine.data(), mine.size());
    });
  for (auto& th : threads) th.join();
  for (int f : failures) EXPECT_EQ(f, 0);
  EXPECT_EQ(pool.bytes_in_use(), 0u);
}

}  // namespace
}  // namespace razor
