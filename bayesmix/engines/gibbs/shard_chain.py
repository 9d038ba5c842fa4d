"""The sub-cluster chain over data shards: ``Shard`` (a shard's points, labels and pending
split-merge sides; what a Dask actor holds) and ``run_sharded_chain`` (the master's sweep loop,
which keeps only the global sufficient statistics).  No Dask here: the shards are reached
through a ``ShardSet`` (in-process objects, or actors in ``engines/sharded.py``).

One sweep, as ``subcluster.subcluster_chain`` (Chang & Fisher 2013; Dinari et al. 2019 for the
distribution of points and labels over machines), with the round trips it costs:

1. hyperparameters | partition and (MFM) K | K+ on the master, from the counts;
2. weights and theta_k | stats on the master (the same njit functions); the DP's slices need
   the smallest slice min_i log u_i: one broadcast for the shards' per-cluster
   min log v_i (``shard_kernels.shard_logv_min``), so the master breaks the sticks;
3. one broadcast of (logw, mu, L^-1, c, key, ...) for the z pass; each shard returns its
   reduced counts, sums, sums of x x^T and log-likelihood sum (and, when the draw keeps z,
   its labels before the pass, and the anchors (x_i, z_i) of the coming split-merge move);
   the master sums them in shard order and compacts the labels (the remap goes out with the
   next message to each shard);
4. the split-merge move (Dahl 2003), one call per shard in shard order carrying the partial
   A / B states (``shard_kernels`` docstring); the decision goes out with the next message.

Per sweep: 1 (finite, MFM) or 2 (DP) broadcasts and one sequential call per shard, payloads
O(K D^2) each way, nothing of size N except the labels of the draws that keep z.
Reproducibility: the master's scalars come from numba's generator of the calling thread,
the per-point numbers from counters of the global index, and the stats are reduced in chunk
order within a shard (a layout fixed by its size) and in shard order across shards: the same
seed and shard layout give identical draws whatever the number of workers.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from bayesmix import mixings
from bayesmix.engines.gibbs import shard_kernels as sk
from bayesmix.engines.gibbs.split_merge import log_counts, merge_bound
from bayesmix.engines.gibbs.subcluster import (
    CAP_HITS,
    _sm_lists,
    compact,
    draw_components,
    n_chunks,
    new_key,
    partition_hypers,
    relabel_pass,
    rest_lump,
    save_params,
    slice_sticks,
    slice_weights_head,
    stats_from_z,
    weights_given_z,
)
from bayesmix.kernels.niw import cl_add, cl_reset, predictive_tables
from bayesmix.mixings import registry

NEG_INF = -np.inf
_NO_Z = np.zeros(0, np.int64)  # compaction on the master: the labels live on the shards


class Shard:
    """Points off..off+m-1 (standardised, (m, D)), their labels per chain, and the pending
    split-merge sides.  Every method first applies the queued ``ops`` (remaps and split-merge
    decisions, in order) and returns its value with the seconds spent in kernels."""

    def __init__(self, x: np.ndarray, off: int, n_total: int, hyp: np.ndarray, fam: int,
                 threads: int = 1) -> None:  # fmt: skip
        self.x = np.ascontiguousarray(x, dtype=np.float64)
        self.off, self.n_total = int(off), int(n_total)
        self.hyp, self.fam, self.threads = np.asarray(hyp, np.float64), int(fam), int(threads)
        self.m, self.d = self.x.shape
        self.nch = int(n_chunks(self.m))
        self.z: dict[int, np.ndarray] = {}
        self.members = np.zeros(self.m, np.int64)
        self.side = np.zeros(self.m, np.int64)
        self.nm = 0
        self.tables: tuple | None = None  # Student-t tables and log j (first split-merge)

    # -- helpers -------------------------------------------------------------------------

    def _local(self, g: int) -> int:
        """The local index of global point g, or -1 when another shard holds it."""
        return g - self.off if self.off <= g < self.off + self.m else -1

    def _ops(self, chain: int, ops: Sequence[tuple]) -> None:
        z = self.z[chain]
        for op in ops:
            if op[0] == "remap":
                relabel_pass(z, op[1])
            else:  # ("decide", accepted, split, ci, kb, j_global)
                _, acc, split, ci, kb, gj = op
                if acc:
                    sk.sm_apply(z, self.members, self.side, self.nm, split, ci, kb, self._local(gj))
                self.nm = 0

    def _threads(self) -> None:
        import numba

        numba.set_num_threads(max(1, min(self.threads, numba.config.NUMBA_NUM_THREADS)))

    # -- methods the master calls -----------------------------------------------------------

    def start(self, chain: int, slots: int) -> tuple:
        """A chain's labels <- one cluster; returns its stats (cnt, sx, sxx)[:slots]."""
        t0 = time.perf_counter()
        self.z[chain] = np.zeros(self.m, np.int64)
        cnt, sx, sxx = np.zeros(slots, np.int64), np.zeros((slots, self.d)), np.zeros((slots, self.d, self.d))  # fmt: skip
        stats_from_z(self.x, self.z[chain], slots, cnt, sx, sxx)
        return (cnt, sx, sxx), time.perf_counter() - t0

    def logv_min(self, chain: int, ops: Sequence[tuple], key: np.uint64, t: int) -> tuple:
        """Per-cluster min of log v_i (``shard_kernels.shard_logv_min``)."""
        self._threads()
        t0 = time.perf_counter()
        self._ops(chain, ops)
        out = sk.shard_logv_min(self.z[chain], np.uint64(key), self.off, int(t), self.nch)
        return out, time.perf_counter() - t0

    def z_pass(self, chain: int, ops: Sequence[tuple], params: tuple, anchors: Sequence[int],
               z_dtype: str | None) -> tuple:  # fmt: skip
        """The z pass on this shard; returns ((cnt, sx, sxx, ll), z before the pass or None,
        [(global index, x, label after the pass)] for the anchors held here), kernel seconds."""
        self._threads()
        t0 = time.perf_counter()
        self._ops(chain, ops)
        z = self.z[chain]
        zb = z.astype(z_dtype) if z_dtype else None
        mu, li, c, logw, n_dest, n_lik, use_slice, t_ll, ll_fac, key, want_ll = params
        atoms, d = logw.shape[0], self.d
        ccnt = np.zeros((self.nch, atoms), np.int64)
        csx, csxx = np.zeros((self.nch, atoms, d)), np.zeros((self.nch, atoms, d, d))
        cll = np.zeros(self.nch)
        cnt, sx, sxx = np.zeros(n_dest, np.int64), np.zeros((n_dest, d)), np.zeros((n_dest, d, d))  # fmt: skip
        ll = sk.shard_z_pass(self.x, z, mu, li, c, logw, n_dest, n_lik, use_slice, t_ll, ll_fac,
                             self.fam, np.uint64(key), self.off, self.nch, ccnt, csx, csxx, cll,
                             cnt, sx, sxx, want_ll)  # fmt: skip
        found = [(g, self.x[g - self.off].copy(), int(z[g - self.off])) for g in anchors
                 if self._local(g) >= 0]  # fmt: skip
        return ((cnt, sx, sxx, ll), zb, found), time.perf_counter() - t0

    def fetch(self, chain: int, ops: Sequence[tuple], anchors: Sequence[int]) -> tuple:
        """[(global index, x, label)] of the anchors held here."""
        t0 = time.perf_counter()
        self._ops(chain, ops)
        z = self.z[chain]
        found = [(g, self.x[g - self.off].copy(), int(z[g - self.off])) for g in anchors
                 if self._local(g) >= 0]  # fmt: skip
        return found, time.perf_counter() - t0

    def sm_alloc(self, chain: int, ops: Sequence[tuple], move: tuple, cl: tuple) -> tuple:
        """This shard's part of the sequential allocation (``shard_kernels.sm_allocate``);
        ``cl`` = the partial A / B states (cnt, mean, scl, cst, q), returned updated with the
        part of log q and the per-side sums (n, sum x, sum x x^T) of the shard's members."""
        self._threads()
        t0 = time.perf_counter()
        self._ops(chain, ops)
        if self.tables is None:
            tc, tp = predictive_tables(self.n_total + 1, self.d, self.hyp, self.fam)
            self.tables = (tc, tp, log_counts(self.n_total))
        tc, tp, logn = self.tables
        gi, gj, ci, cj, split, mkey = move
        z = self.z[chain]
        tcnt, tmean, tscl, tcst, tq = (np.array(a) for a in cl)
        d = self.d
        scnt, ssx, ssxx = np.zeros(2, np.int64), np.zeros((2, d)), np.zeros((2, d, d))
        self.nm = sk.sm_members(z, ci, cj, self._local(gi), self._local(gj), self.members)
        lq = sk.sm_allocate(self.x, z, self.members, self.nm, self.off, np.uint64(mkey), split,
                            ci, tcnt, tmean, tscl, tcst, tq, tc, tp, logn, self.hyp, self.fam,
                            self.side, scnt, ssx, ssxx)  # fmt: skip
        return ((tcnt, tmean, tscl, tcst, tq), lq, (scnt, ssx, ssxx)), time.perf_counter() - t0

    def labels(self, chain: int, ops: Sequence[tuple]) -> tuple:
        """The chain's labels (after the queued ops)."""
        t0 = time.perf_counter()
        self._ops(chain, ops)
        return self.z[chain].copy(), time.perf_counter() - t0


class ShardSet(Protocol):
    """The shards of one data set, in shard order, and how to call them."""

    offsets: np.ndarray  # global index of each shard's first point; offsets[-1] = N

    def call(self, calls: Sequence[tuple[int, str, tuple]]) -> list[Any]:
        """Run ``shard[s].name(*args)`` for each (s, name, args) at once; their results."""


class LocalShards:
    """In-process shards (tests, and the reference for the Dask actors)."""

    def __init__(self, shards: Sequence[Shard]) -> None:
        self.shards = list(shards)
        self.offsets = np.array([s.off for s in self.shards] + [self.shards[-1].off + self.shards[-1].m])  # fmt: skip

    def call(self, calls: Sequence[tuple[int, str, tuple]]) -> list[Any]:
        return [getattr(self.shards[s], name)(*args) for s, name, args in calls]


def split_rows(x: np.ndarray, sizes: Sequence[int], hyp, fam: int) -> LocalShards:
    """In-process shards of the rows of x, of the given sizes, in order."""
    off = np.concatenate([[0], np.cumsum(sizes)])
    n = int(off[-1])
    return LocalShards([Shard(x[off[s] : off[s + 1]], off[s], n, hyp, fam) for s in range(len(sizes))])  # fmt: skip


def payload_bytes(obj: Any) -> int:
    """Bytes of the numpy arrays and scalars in a nested message (the payload sent)."""
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, (list, tuple)):
        return sum(payload_bytes(v) for v in obj)
    if isinstance(obj, dict):
        return sum(payload_bytes(v) for v in obj.values())
    return 8


class Meter:
    """Per-sweep accounting: round trips (one per ``ShardSet.call``: its calls go out at once),
    messages, payload bytes each way, and kernel seconds measured on the shards, per method
    (max over a call's shards: the critical path), summed over the sweep."""

    PARALLEL = ("z_pass", "logv_min")  # the methods whose work splits over the shards

    def __init__(self) -> None:
        self.sweeps: list[dict[str, Any]] = []
        self.cur: dict[str, Any] = {}

    def begin(self) -> None:
        self.cur = dict(round_trips=0, messages=0, bytes_out=0, bytes_in=0, kernel_s=0.0,
                        kernel_par_s=0.0, kernel_seq_s=0.0, master_s=0.0,
                        wall_s=-time.perf_counter(), by_method={})  # fmt: skip

    def phase(self, calls: Sequence[tuple], results: Sequence[tuple]) -> None:
        c = self.cur
        if not c:  # outside a sweep (the chain's start)
            return
        name = calls[0][1]
        k = max(r[1] for r in results)
        c["round_trips"] += 1
        c["messages"] += len(calls)
        c["bytes_out"] += payload_bytes([a for _, _, a in calls])
        c["bytes_in"] += payload_bytes([r[0] for r in results])
        c["kernel_s"] += k
        c["kernel_par_s" if name in self.PARALLEL else "kernel_seq_s"] += k
        m = c["by_method"].setdefault(name, [0, 0.0])
        m[0] += 1
        m[1] += k

    def end(self) -> None:
        self.cur["wall_s"] += time.perf_counter()
        self.sweeps.append(self.cur)
        self.cur = {}


def _cl_state(d: int) -> tuple:
    """Empty A / B sub-cluster states (cnt, mean, scl, cst, q) for ``niw.cl_*``."""
    return np.zeros(2, np.int64), np.zeros((2, d)), np.zeros((2, d, d)), np.zeros(2), np.zeros((2, d))  # fmt: skip


def run_sharded_chain(
    shards: ShardSet,
    cfg: Any,
    chain: int,
    seeds: tuple[int, int],
    state0: np.ndarray,
    out: dict[str, np.ndarray],
    *,
    cap: int,
    progress: bool = False,
    meter: Meter | None = None,
    stop: Callable[[], bool] | None = None,
) -> dict:
    """One chain of ``cfg`` (a ``driver.ChainConfig`` with algorithm "subcluster") over the
    shards, filling the driver's output arrays ``out``; returns ``out`` with the chain facts
    ``driver._run_chain`` adds (accept rates, timings)."""
    n, d = int(shards.offsets[-1]), out["mu"].shape[2]
    nsh = len(shards.offsets) - 1
    hyp = np.asarray(cfg.hyp, np.float64)
    hp = np.asarray(cfg.hp, np.float64)
    logpk = np.asarray(cfg.logpk, np.float64)
    fam, kind = int(cfg.fam), int(cfg.kind)
    kk_lab = cfg.n_components if cfg.labelled else 0
    labelled = kk_lab > 0
    slots = kk_lab if labelled else cap + 1
    sliced = not labelled and kind != registry.MFM
    tune, thin, n_sm = int(cfg.tune), int(cfg.thin), int(cfg.split_merge)
    total = tune + cfg.draws * thin
    state = np.array(state0, np.float64)
    logw = np.full(slots, NEG_INF)
    mu, lc = np.zeros((slots, d)), np.zeros((slots, d, d))
    c, li = np.zeros(slots), np.zeros((slots, d, d))
    xbar, scat = np.zeros((slots, d)), np.zeros((slots, d, d))
    wk = tuple(np.zeros((d, d)) for _ in range(5))
    remap = np.zeros(slots, np.int64)
    act, pos, free = (np.zeros(slots, np.int64) for _ in range(3))
    vtab, rtab = np.full(n + 3, np.nan), np.full(n + 3, np.nan)
    hyper_random = hp[0] == 0.0 or hp[3] == 0.0
    tc, _ = predictive_tables(n + 1, d, hyp, fam)
    xb1, psi, wl = np.zeros(d), np.zeros((d, d)), np.zeros((d, d))
    xb3, sc3 = np.zeros((3, d)), np.zeros((3, d, d))  # sides A, B and their union
    ops: list[list[tuple]] = [[] for _ in range(nsh)]
    out_z, out_w = out["z"], out["w"]
    zr, zs = out_z.shape[0], out_w.shape[0]

    def call(calls: list[tuple[int, str, tuple]]) -> list:
        res = shards.call(calls)
        for s, _, _ in calls:
            ops[s] = []
        if meter is not None:
            meter.phase(calls, res)
        return res

    def broadcast_remap(before: np.ndarray) -> None:
        if any(remap[k] != k for k in range(len(before)) if before[k] > 0):
            for s in range(nsh):
                ops[s].append(("remap", remap.copy()))

    sk.seed_numba(int(seeds[0]))
    cnt = np.zeros(slots, np.int64)
    sx, sxx = np.zeros((slots, d)), np.zeros((slots, d, d))
    for (scnt, ssx, ssxx), _ in call([(s, "start", (chain, slots)) for s in range(nsh)]):
        cnt += scnt
        sx += ssx
        sxx += ssxx
    t = 1 if n > 0 else 0
    t0, c0, last = time.perf_counter(), time.thread_time(), time.perf_counter()
    for it in range(total):
        if stop is not None and stop():
            raise KeyboardInterrupt
        if meter is not None:
            meter.begin()
        m0 = time.perf_counter()
        # 1. hyperparameters | partition (and K | K+ for a static MFM)
        partition_hypers(hyper_random, kind, state, hp, it, tune, cnt, act, pos, free, kk_lab,
                         t, slots, n, logpk, vtab, rtab)  # fmt: skip
        # 2. weights and parameters | z
        key = np.uint64(new_key())
        master_s = time.perf_counter() - m0
        if sliced:
            m0 = time.perf_counter()
            slice_weights_head(kind, state, t, cnt, logw)
            master_s += time.perf_counter() - m0
            res = call([(s, "logv_min", (chain, ops[s], key, t)) for s in range(nsh)])
            m0 = time.perf_counter()
            mins = np.minimum.reduce([r[0] for r in res])
            lmin = sk.slice_min_of(logw, mins, t)
            n_dest, n_lik, capped = slice_sticks(kind, state, t, logw, lmin)
            use_slice = True
        else:
            m0 = time.perf_counter()
            n_dest, n_lik, use_slice, capped = weights_given_z(kind, state, kk_lab, t, cnt, logw,
                                                               _NO_Z, key, 1)  # fmt: skip
        if capped:
            state[CAP_HITS] += 1.0
        draw_components(n_lik, cnt, sx, sxx, logw, hyp, fam, mu, lc, c, li, xbar, scat, wk)
        t_ll, ll_fac, lw_tail = rest_lump(sliced, logw, t, n_lik)
        pending = -1
        keep_z = False
        if it >= tune and (it - tune + 1) % thin == 0:
            pending = (it - tune) // thin
            out["k"][pending] = t
            out["state"][pending] = state
            keep_z = (pending * zr) % zs < zr
            save_params(pending, sliced, t, lw_tail, logw, mu, lc, out_w, out["mu"], out["cov"])
        anchors: tuple[int, ...] = ()
        if n_sm > 0 and n >= 2:
            anchors = sk.draw_pair(n)
        master_s += time.perf_counter() - m0
        # 3. z | weights, parameters: one broadcast, stats back
        params = (mu, li, c, logw, n_dest, n_lik, use_slice, t_ll, ll_fac, key, pending >= 0)
        zdt = out_z.dtype.str if keep_z else None
        res = call([(s, "z_pass", (chain, ops[s], params, anchors, zdt)) for s in range(nsh)])
        m0 = time.perf_counter()
        cnt[:] = 0
        sx[:] = 0.0
        sxx[:] = 0.0
        ll = 0.0
        found: dict[int, tuple] = {}
        for (st, _zb, fnd), _ in res:
            cnt[:n_dest] += st[0]
            sx[:n_dest] += st[1]
            sxx[:n_dest] += st[2]
            ll += st[3]
            found.update({g: (xg, zg) for g, xg, zg in fnd})
        if keep_z:
            out_z[pending * zr // zs] = np.concatenate([r[0][1] for r in res])
        if pending >= 0:
            out["ll"][pending] = ll
        before = cnt[:n_dest].copy()
        if labelled:
            t = int(np.count_nonzero(cnt[:kk_lab]))
        else:
            t = int(compact(_NO_Z, n_dest, cnt, sx, sxx, remap))
            broadcast_remap(before)
            found = {g: (xg, int(remap[zg])) for g, (xg, zg) in found.items()}
        master_s += time.perf_counter() - m0
        # 4. split-merge moves on the partition, one call per shard in shard order
        if n_sm > 0 and n >= 2:
            labs, c1 = registry.split_merge_constants(kind, state)
            sig = registry.sigma_of(kind, state)
        for move in range(n_sm if n >= 2 else 0):
            if move > 0:
                anchors = sk.draw_pair(n)
                own = [int(np.searchsorted(shards.offsets, g, side="right") - 1) for g in anchors]
                found = {}
                for fnd, _ in call([(s, "fetch", (chain, ops[s], anchors)) for s in sorted(set(own))]):  # fmt: skip
                    found.update({g: (xg, zg) for g, xg, zg in fnd})
            m0 = time.perf_counter()
            gi, gj = anchors
            (xi, ci), (xj, cj) = found[gi], found[gj]
            nact, nfree = _sm_lists(labelled, kk_lab, t, slots, cnt, act, pos, free)
            for tt in (nact - 1, nact):
                if tt >= 0 and rtab[tt] != rtab[tt]:
                    rtab[tt] = registry.urn_r(kind, tt, state, kk_lab, n, logpk, vtab)
            split = ci == cj
            master_s += time.perf_counter() - m0
            if split and nfree == 0:  # finite with every slot occupied: no split possible
                continue
            m0 = time.perf_counter()
            rr = 0.0 if labs else rtab[nact if split else nact - 1]
            lu = 0.0
            if not split:  # a merge whose bound already fails needs no pass over the shards
                lu = sk.uniform_log()
                bound, margin = merge_bound(ci, cj, cnt, sx, sxx, xb3, sc3, xb1, psi, rr, sig, c1,
                                            labelled, nfree, hyp, fam, psi, wl)  # fmt: skip
                if lu >= bound + margin:
                    master_s += time.perf_counter() - m0
                    continue
            mkey = new_key()
            cl = _cl_state(d)
            xij = np.stack([xi, xj])
            for s in range(2):
                cl_reset(s, *cl, tc, hyp, fam)
                cl_add(xij, s, s, *cl, tc, hyp, fam, xb1)
            na, nb, lq = 1, 1, 0.0
            sxa, sxb = xi.copy(), xj.copy()
            sxxa, sxxb = np.outer(xi, xi), np.outer(xj, xj)
            mv = (gi, gj, ci, cj, split, mkey)
            master_s += time.perf_counter() - m0
            for s in range(nsh):
                (cl, lqs, (scnt, ssx, ssxx)), _ = call([(s, "sm_alloc", (chain, ops[s], mv, cl))])[
                    0
                ]
                lq += lqs
                na, nb = na + int(scnt[0]), nb + int(scnt[1])
                sxa, sxb = sxa + ssx[0], sxb + ssx[1]
                sxxa, sxxb = sxxa + ssxx[0], sxxb + ssxx[1]
            m0 = time.perf_counter()
            lr = sk.sm_log_ratio(split, na, sxa, sxxa, nb, sxb, sxxb, lq, rr, sig, c1, labs,
                                 nfree, hyp, fam, xb3, sc3, psi, wl)  # fmt: skip
            acc = bool((sk.uniform_log() if split else lu) < lr)
            kb = -1
            if acc and split:
                kb = int(free[sk.randint(nfree)] if labelled else free[nfree - 1])
            for s in range(nsh):
                ops[s].append(("decide", acc, split, int(ci), kb, int(gj)))
            if acc:
                if it >= tune:
                    state[4] += 1.0
                if split:
                    cnt[ci], sx[ci], sxx[ci] = na, sxa, sxxa
                    cnt[kb], sx[kb], sxx[kb] = nb, sxb, sxxb
                else:
                    cnt[ci], sx[ci], sxx[ci] = na + nb, sxa + sxb, sxxa + sxxb
                    cnt[cj] = 0
                if labelled:
                    t = int(np.count_nonzero(cnt[:kk_lab]))
                else:
                    before = cnt.copy()
                    t = int(compact(_NO_Z, slots, cnt, sx, sxx, remap))
                    broadcast_remap(before)
            master_s += time.perf_counter() - m0
        if meter is not None:
            meter.cur["master_s"] = master_s
            meter.end()
        now = time.perf_counter()
        if progress and (it + 1 == total or now - last > 3.0):
            last = now
            print(f"subcluster (sharded, {nsh} shards) chain {chain}: {100 * (it + 1) // total:3d}% "
                  f"({it + 1}/{total} sweeps, {now - t0:.1f}s)", file=sys.stderr, flush=True)  # fmt: skip
    # flush the last decisions so that the shards' labels are the chain's final state
    call([(s, "fetch", (chain, ops[s], ())) for s in range(nsh) if ops[s]])
    sweep_s, sweep_cpu_s = time.perf_counter() - t0, time.thread_time() - c0
    out.update(
        accept=state[2] / state[3] if state[3] > 0 else math.nan,
        accept_discount=state[7] / state[8] if state[8] > 0 else math.nan,
        sm_accept=float(state[4]),
        cap_hits=float(state[mixings.K_SLOT]),
        log_step=float(state[1]),
        load_s=0.0,
        sweep_s=sweep_s,
        sweep_cpu_s=sweep_cpu_s,
        post_s=0.0,
    )
    return out
