"""A DDP-safe, deterministic webdataset loader over tar shards.

``ShardDataset`` is an ``IterableDataset`` that yields whole batches. It reads shards with
webdataset's own tar iterators (so ``pipe:`` URLs and any ``gopen`` scheme work) and decides
itself which shards each rank and worker reads:

- training (``train=True``): each (rank, worker) slot resamples shards with replacement from its
  own share of the shard list (all shards when there are fewer shards than slots), through a
  shuffle buffer, and stops after a fixed number of batches. Every rank yields exactly
  ``epoch_samples // (world_size * batch_size)`` batches per epoch, whatever the shard sizes,
  so ranks never wait on each other at the end of an epoch.
- evaluation (``train=False``): one ordered pass; sample ``i`` goes to rank ``i % world_size``
  and each rank keeps exactly ``total // world_size`` samples (the remainder is dropped, so
  ranks stay equal).

Order is a pure function of (seed, epoch, rank, worker, shards). Bad samples are skipped and
counted by reason (:class:`data.skips.SkipCounter`), never fatal.

In training the shuffle buffer holds raw (undecoded) samples and each sample's random crop comes
from a generator seeded by its position in the stream, so a slot's stream can be replayed up to
any position without decoding: :class:`ShardLoader` saves the position in checkpoints
(``state_dict``) and a resumed run continues with exactly the batches that would have followed
(see :mod:`data.loader_state`).
"""

from __future__ import annotations

import math
import random
import tarfile
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from webdataset.gopen import gopen
from webdataset.tariterators import group_by_keys, tar_file_expander

from data.loader_state import LoaderPosition, ResumePlan, loader_state, plan_from_state, worker_share
from data.skips import SkipCounter, log
from data.urls import ShardSet, expand_urls
from data.worker_signals import WorkerInit

Decoder = Callable[[dict, torch.Generator], "dict | None"]
Collator = Callable[[list[dict]], Any]


def dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def worker_slot() -> tuple[int, int]:
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


def read_shard(url: str, skips: SkipCounter) -> Iterator[dict]:
    """Samples of one shard (``{"__key__", "__url__", ext: bytes, ...}``); tar-level damage is
    counted in ``skips`` and ends the shard early, keeping the samples read before it."""

    def handler(exn: Exception) -> bool:
        reason = "truncated_tar" if isinstance(exn, tarfile.ReadError) else "bad_tar"
        skips.add(reason, url, None, f"{type(exn).__name__}: {exn.args[0] if exn.args else ''}")
        return True

    try:
        stream = gopen(url)
    except Exception as exn:  # missing file, failed pipe command
        skips.add("open_failed", url, None, str(exn))
        return
    try:
        files = tar_file_expander([{"url": url, "stream": stream}], handler=handler)
        yield from group_by_keys(files, handler=handler)
    finally:
        stream.close()


class ShardDataset(IterableDataset):
    """Batches from webdataset shards. ``decode(sample, generator)`` turns a raw sample (dict of
    member bytes plus ``__key__`` and ``__url__``) into an item or ``None`` (already counted);
    ``collate(items)`` makes the batch."""

    def __init__(
        self,
        shards: str | ShardSet,
        decode: Decoder,
        collate: Collator,
        batch_size: int,
        train: bool = True,
        shuffle_buffer: int = 500,
        seed: int = 0,
        epoch_samples: int | None = None,
        skips: SkipCounter | None = None,
        world: tuple[int, int] | None = None,
        bucket_batches: int = 0,
        length_of: Callable[[dict], int] | None = None,
    ) -> None:
        super().__init__()
        if bucket_batches and (bucket_batches < 2 or length_of is None):
            raise ValueError(f"bucket_batches must be 0 (off) or >= 2 with a length_of, got {bucket_batches}")
        self.bucket_batches, self.length_of = int(bucket_batches), length_of
        self.shards = shards if isinstance(shards, ShardSet) else expand_urls(shards)
        self.decode, self.collate = decode, collate
        self.batch_size, self.train = int(batch_size), train
        self.shuffle_buffer, self.seed = shuffle_buffer, seed
        self.epoch_samples = epoch_samples or self.shards.total
        if self.epoch_samples is None and train:
            raise ValueError(
                f"the sample count of {self.shards.urls[0]} ... is unknown (no shards.json beside them): "
                "set epoch_samples explicitly"
            )
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.skips = skips or SkipCounter()
        self.world = world  # (rank, world_size) override, else torch.distributed's
        self._resolved_world: tuple[int, int] | None = None
        self.epoch = 0
        self.num_workers = 1  # set by ShardLoader; needed for __len__
        self.resume: ResumePlan | None = None  # set by ShardLoader for the next pass
        self.tag_batches = False  # ShardLoader: training yields (batch, (slot, cursor)) to track the position

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    # -- sizes -------------------------------------------------------------------------------
    def _rank_world(self) -> tuple[int, int]:
        return self.world or self._resolved_world or dist_info()

    def resolve_world(self) -> None:
        """Fix (rank, world) from this process' torch.distributed state; DataLoader workers do
        not see the process group, so the loader calls this before starting them."""
        self._resolved_world = self.world or dist_info()

    def batches_per_rank(self) -> int:
        _, world = self._rank_world()
        if self.train:
            n = self.epoch_samples // (world * self.batch_size)
            if n < 1:
                raise ValueError(
                    f"{self.epoch_samples} samples cannot give every one of {world} ranks a batch of "
                    f"{self.batch_size}: lower batch_size or add data"
                )
            return n
        if self.epoch_samples is None:
            raise TypeError("evaluation length is unknown: the shards have no manifest")
        per_rank = self.epoch_samples // world
        return sum(math.ceil(self._worker_share(per_rank, w, self.num_workers) / self.batch_size) for w in range(self.num_workers))

    def __len__(self) -> int:
        return self.batches_per_rank()

    @staticmethod
    def _worker_share(n: int, worker: int, workers: int) -> int:
        return worker_share(n, worker, workers)

    # -- reading -----------------------------------------------------------------------------
    def _read_shard(self, url: str) -> Iterator[dict]:
        return read_shard(url, self.skips)

    def _items(self, samples: Iterator[dict], gen: torch.Generator) -> Iterator[dict]:
        for s in samples:
            item = self.decode(s, gen)
            if item is not None:
                yield item

    def _train_stream(self, rank: int, world: int, wid: int, nw: int, rng: random.Random) -> Iterator[dict]:
        """Raw samples of slot ``(rank, wid)``: shards drawn with replacement from its share."""
        slots, slot = world * nw, rank * nw + wid
        urls = self.shards.urls
        if len(urls) >= slots:
            urls = urls[slot::slots]
        elif slot == 0 and self.epoch == 0:
            log.info("%d shards for %d rank x worker slots: every slot resamples all shards", len(urls), slots)
        empty_reads = 0
        while True:
            url = rng.choice(urls)
            got = False
            for sample in self._read_shard(url):
                got = True
                yield sample
            empty_reads = 0 if got else empty_reads + 1
            if empty_reads > 2 * len(urls) + 8:
                raise RuntimeError(f"no readable samples in {len(urls)} shards (last tried {url}); see the skip log")

    def _eval_stream(self, rank: int, world: int, wid: int, nw: int) -> Iterator[dict]:
        if self.epoch_samples is None and world > 1:
            raise ValueError("evaluating on several ranks needs the sample count: give shards with a shards.json")
        per_rank = self.epoch_samples // world if self.epoch_samples is not None else float("inf")
        i = 0
        for url in self.shards.urls:
            for sample in self._read_shard(url):
                if i // world >= per_rank:
                    return
                if i % world == rank and (i // world) % nw == wid:
                    yield sample
                i += 1

    def _shuffle(self, items: Iterator[dict], rng: random.Random) -> Iterator[dict]:
        buf: list[dict] = []
        for it in items:
            if len(buf) < self.shuffle_buffer:
                buf.append(it)
                continue
            j = rng.randrange(len(buf))
            buf[j], it = it, buf[j]
            yield it
        rng.shuffle(buf)
        yield from buf

    def __iter__(self) -> Iterator[Any]:
        rank, world = self._rank_world()
        wid, nw = worker_slot()
        if not self.train:
            return self._eval_batches(rank, world, wid, nw)
        plan = self.resume  # read now: a DataLoader without workers starts the generator later
        return self._train_batches(rank, world, plan.slot(wid, nw) if plan else wid, nw, plan)

    def _train_batches(self, rank: int, world: int, slot: int, nw: int, plan: ResumePlan | None) -> Iterator[Any]:
        """Batches of worker slot ``slot``, after skipping the ``plan``'s share of it undecoded."""
        rng = random.Random(f"codeclm-{self.seed}-{self.epoch}-{rank}-{slot}-{nw}")
        base, gen = rng.getrandbits(62), torch.Generator()
        skip, done = (plan.cursors[slot], plan.batches[slot]) if plan else (0, 0)
        quota = self._worker_share(self.batches_per_rank(), slot, nw) - done
        raw = self._shuffle(self._train_stream(rank, world, slot, nw, rng), rng)
        cursor = 0
        if quota > 0:
            for _ in range(skip):  # fast-forward: samples (keys and bytes) pass, nothing is decoded
                next(raw)
                cursor += 1
        if self.bucket_batches:
            yield from self._bucketed(raw, cursor, quota, rank, slot, base, gen, done)
            return
        batch: list[dict] = []
        made = 0
        if quota <= 0:
            return
        for item, cursor in self._good_items(raw, cursor, base, gen):
            batch.append(item)
            if len(batch) == self.batch_size:
                out = self.collate(batch)
                yield (out, (slot, cursor)) if self.tag_batches else out
                batch, made = [], made + 1
                if made >= quota:
                    break

    def _good_items(self, raw: Iterator[dict], cursor: int, base: int, gen: torch.Generator) -> Iterator[tuple[dict, int]]:
        """Decoded items of the raw stream with the cursor after each (bad samples skipped, counted)."""
        failed = 0
        while True:
            sample = next(raw)
            cursor += 1
            gen.manual_seed(_mix(base, cursor))
            item = self.decode(sample, gen)
            if item is None:
                failed += 1
                if failed > MAX_FAILED_IN_A_ROW:
                    raise RuntimeError(f"no readable samples in the last {failed} read from {len(self.shards.urls)} "
                                       f"shards (last in {sample.get('__url__', '?')}); see the skip log")
                continue
            failed = 0
            yield item, cursor

    def _bucketed(self, raw: Iterator[dict], cursor: int, quota: int, rank: int, slot: int, base: int,
                  gen: torch.Generator, done: int) -> Iterator[Any]:
        """Length bucketing: pools of ``bucket_batches`` batches of consecutive items, sorted by
        length, cut into batches, emitted in a seeded random order. A batch's cursor is its pool's
        start (its end for the pool's last batch), so a resumed slot re-reads the pool it stopped
        in, decodes it alike (crops are seeded by cursor) and skips the batches already taken."""
        per_pool = self.bucket_batches
        skip = done % per_pool  # batches of the interrupted pool already taken
        made = 0
        items = self._good_items(raw, cursor, base, gen)
        while made < quota:
            start = cursor
            pool = []
            for _ in range(per_pool * self.batch_size):
                item, cursor = next(items)
                pool.append(item)
            order = sorted(range(len(pool)), key=lambda i: (self.length_of(pool[i]), i))
            chunks = [order[j : j + self.batch_size] for j in range(0, len(order), self.batch_size)]
            random.Random(f"codeclm-bucket-{self.seed}-{self.epoch}-{rank}-{slot}-{start}").shuffle(chunks)
            for n, chunk in enumerate(chunks):
                if skip:
                    skip -= 1
                    continue
                out = self.collate([pool[i] for i in chunk])
                at = cursor if n == len(chunks) - 1 else start
                yield (out, (slot, at)) if self.tag_batches else out
                made += 1
                if made >= quota:
                    return

    def _eval_batches(self, rank: int, world: int, wid: int, nw: int) -> Iterator[Any]:
        rng = random.Random(f"codeclm-{self.seed}-{self.epoch}-{rank}-{wid}-{nw}")
        gen = torch.Generator().manual_seed(rng.getrandbits(62))
        batch: list[dict] = []
        for item in self._items(self._eval_stream(rank, world, wid, nw), gen):
            batch.append(item)
            if len(batch) == self.batch_size:
                yield self.collate(batch)
                batch = []
        if batch:
            yield self.collate(batch)


MAX_FAILED_IN_A_ROW = 1000  # undecodable samples in a row before a training stream gives up


def _mix(base: int, n: int) -> int:
    """A 62-bit seed for sample ``n`` of a stream (a splitmix64 step)."""
    z = (base + (n + 1) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) >> 2


class ShardLoader(DataLoader):
    """A DataLoader over a :class:`ShardDataset` that advances the dataset's epoch on every pass
    (or takes it from :meth:`set_epoch`), so each epoch reads a new, reproducible order.

    It is stateful: ``state_dict()`` is the position in the current training epoch (epoch,
    batches taken, and per rank and worker slot the raw-sample cursor; a collective under
    torch.distributed, called on every rank when Lightning saves a checkpoint) and
    ``load_state_dict()`` makes the next pass continue from there. Lightning's fit loop calls
    both for its training loader. Its own ``generator`` draws the workers' base seed, so starting
    an epoch leaves the global torch RNG alone.
    """

    def __init__(self, dataset: ShardDataset, num_workers: int = 0, pin_memory: bool = False, **kw: Any) -> None:
        dataset.num_workers = max(1, num_workers)
        dataset.tag_batches = dataset.train
        kw.setdefault("batch_size", None)
        kw.setdefault("generator", torch.Generator().manual_seed(dataset.seed))
        kw["worker_init_fn"] = WorkerInit(kw.get("worker_init_fn"))
        super().__init__(dataset, num_workers=num_workers, pin_memory=pin_memory, **kw)
        self._next_epoch: int | None = None
        self._resume: ResumePlan | None = None
        self._position: LoaderPosition | None = None

    def set_epoch(self, epoch: int) -> None:
        self._next_epoch = epoch

    def __iter__(self):
        ds = self.dataset
        if self._next_epoch is not None:
            ds.set_epoch(self._next_epoch)
        self._next_epoch = ds.epoch + 1
        ds.resolve_world()
        ds.resume, self._resume = self._resume, None  # pickled into the workers with the dataset
        self._position = LoaderPosition.start(ds.epoch, ds.num_workers, ds.resume)
        batches = super().__iter__()
        return self._tracked(batches, self._position) if ds.tag_batches else batches

    @staticmethod
    def _tracked(batches, position: LoaderPosition):
        for batch, (slot, cursor) in batches:
            position.advance(slot, cursor)
            yield batch

    def state_dict(self) -> dict[str, Any]:
        ds = self.dataset
        rank, world = ds._rank_world()
        pos = self._position or LoaderPosition.start(
            self._next_epoch if self._next_epoch is not None else ds.epoch, ds.num_workers, None)
        return loader_state(pos, rank, world, ds.batch_size, ds.seed)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ds = self.dataset
        if not ds.train:
            return
        ds.resolve_world()
        rank, world = ds._rank_world()
        epoch, plan = plan_from_state(state, rank, world, ds.num_workers, ds.batch_size, ds.seed, ds.batches_per_rank())
        self._next_epoch, self._resume = epoch, plan
        self._position = LoaderPosition.start(epoch, ds.num_workers, plan)  # until the next pass starts
