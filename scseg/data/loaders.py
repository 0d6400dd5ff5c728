"""Datasets and loaders for training and validation (MONAI CacheDataset + DataLoader)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from multiprocessing.pool import ThreadPool
from pathlib import Path

import torch
from monai.data import CacheDataset, DataLoader, partition_dataset
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from scseg.config.schema import Config
from scseg.data.annotation import attach_annotations
from scseg.data.cases import Case, discover_cases, split_cases
from scseg.data.checks import check_label_ids_present
from scseg.data.transforms import train_transforms, validation_transforms
from scseg.errors import DataError, ScsegError


@dataclass
class Loaders:
    train: DataLoader
    val: DataLoader
    train_cases: list[Case]
    val_cases: list[Case]
    train_dataset: CacheDataset
    sampler: DistributedSampler | None


def root_cause(err: BaseException) -> BaseException:
    """The innermost exception (MONAI wraps transform errors in RuntimeErrors)."""
    while err.__cause__ is not None or (err.__context__ is not None and not err.__suppress_context__):
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return err


def as_data_error(err: BaseException, what: str) -> ScsegError:
    """Our own error if one is inside ``err``, else a DataError describing the root cause."""
    cause = root_cause(err)
    if isinstance(cause, ScsegError):
        return cause
    return DataError(f"{what}: {type(cause).__name__}: {cause}")


class SafeCacheDataset(CacheDataset):
    """MONAI's CacheDataset, filling its cache without leaving threads behind on an error.

    MONAI fills the cache on a thread pool that it terminates without joining when an item fails; the
    other threads are still inside torch ops when our clean error exits the process, which then aborts
    ("terminate called without an active exception"). Here the cache is filled in the calling thread
    (``data.num_workers`` 0, the default), or on a pool that is joined before the error propagates.
    """

    def _fill_cache(self, indices=None) -> list:
        if self.cache_num <= 0:
            return []
        indices = list(range(self.cache_num)) if indices is None else indices
        bar = partial(tqdm, total=len(indices), desc="Loading dataset", disable=not self.progress)
        if (self.num_workers or 1) <= 1:
            return [self._load_cache_item(i) for i in bar(indices)]
        pool = ThreadPool(self.num_workers)
        try:
            return list(bar(pool.imap(self._load_cache_item, indices)))
        finally:
            pool.terminate()
            pool.join()


def _cache(items: list[dict], transform, config: Config, show: bool, what: str) -> CacheDataset:
    try:
        return SafeCacheDataset(
            items,
            transform,
            cache_rate=1.0 if config.data.cache else 0.0,
            num_workers=max(config.data.num_workers, 1),
            progress=show,
        )
    except Exception as err:
        raise as_data_error(err, what) from None


def prepare_dataset(config: Config) -> None:
    """Generate the synthetic demo data set when the config asks for it and it is not there yet."""
    data = config.data
    if data.generate == "phantom":
        root = Path(data.root)
        target = root / (data.dataset if data.dataset != "auto" else "dataset.csv")
        if not target.exists():
            from scseg.data.phantom import make_phantom_dataset

            make_phantom_dataset(root, seed=config.train.seed)


def build_loaders(config: Config, rank: int = 0, world_size: int = 1, show_progress: bool = True) -> Loaders:
    """Discover, split, preprocess (cached) and batch the data of ``config``."""
    prepare_dataset(config)
    cases = discover_cases(config.data)
    if config.data.label_set is not None and config.data.label_values:
        what = f"data.label_set {config.data.label_set}"
        check_label_ids_present(
            [c.label for c in cases], config.data.label_values, config.data.structure_names, what
        )
    train_cases, val_cases = split_cases(cases, config.data, config.train.seed)
    train_ds = _cache(
        attach_annotations([c.as_dict() for c in train_cases], config),
        train_transforms(config),
        config,
        show_progress,
        "cannot prepare the training data",
    )
    val_items = [c.as_dict() for c in val_cases]
    if world_size > 1 and len(val_items) >= world_size:
        # each rank validates its own share; MONAI's metrics gather the per-case results across ranks
        val_items = partition_dataset(val_items, num_partitions=world_size, even_divisible=False)[rank]
    val_ds = _cache(
        val_items, validation_transforms(config), config, show_progress, "cannot prepare the validation data"
    )
    sampler = (
        DistributedSampler(train_ds, world_size, rank, shuffle=True, seed=config.train.seed)
        if world_size > 1
        else None
    )
    generator = torch.Generator().manual_seed(config.train.seed)
    train = DataLoader(
        train_ds,
        batch_size=config.train.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=config.data.num_workers,
        generator=generator,
        drop_last=False,
    )
    val = DataLoader(val_ds, batch_size=1, num_workers=config.data.num_workers)
    return Loaders(train, val, train_cases, val_cases, train_ds, sampler)
