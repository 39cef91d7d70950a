"""The documented limits of the ``calo`` simulator, measured: containment and the full-readout resolution.

Electrons, default medium (``pb_lar``: Z = 64.75, E_c = 10.15 MeV) and default options unless
stated. Three measurements:

1. **Longitudinal containment**, on a deep, wide grid (120 layers of 0.5 X0 = 60 X0, radial edges
   up to 5 R_M and a last bin to 10⁶ R_M, no noise, no threshold: every deposited GeV is seen).
   Per energy (1, 3, 10, 30, 100 GeV): the depth holding 95 % of the energy of the *mean* profile
   (linear within a layer), next to the PDG rule ``t95 ≈ t_max + 0.08 Z + 9.6`` with
   ``t_max = ln(E/E_c) − 0.5`` (electrons), and next to the 95 % quantile of GFlash's own average
   profile (the Gamma density of [GP] appendix A.1.1);
   and the fraction of the energy deposited beyond 24 X0 (the default grid's depth).
2. **Lateral containment** on the same grid: the fraction of all the energy within 1, 2 and 5 R_M
   (all depths), and the fraction the default grid (24 X0, 2.5 R_M) holds.
   Uncertainties of 1 and 2: standard deviation over ``--bootstrap`` resamples of the showers.
3. **Resolution of the full readout** (the plain sum of the cells of the default grid: 12 layers
   of 2 X0, sampling 0.10, noise 1 MeV, threshold 3 MeV) at fixed energies 1, 2, 3, 5, 10, 20, 30,
   50, 100 GeV (``--showers`` each): response = median of sum/E, σ/E = std(sum/E)/median. Fits of
   ``σ/E = a/√E ⊕ b``, linear least squares in (a², b²) with a², b² ≥ 0:

   * ``unweighted``: ``labkit.tasks.fit_stochastic_constant`` (every point weighs its absolute
     residual in (σ/E)²: the 1 GeV point, with (σ/E)² 100× that at 100 GeV, sets the fit);
   * ``chi2``: each point weighted by the inverse variance of its (σ/E)² (relative error
     √(2/(N−1)) for N showers), the maximum-likelihood fit for equal N;
   * ``chi2 + c/E``: the same with a noise term, ``σ/E = a/√E ⊕ b ⊕ c/E``;
   * ``chi2, E >= 10``: the two-term chi2 fit over 10–100 GeV only.

   Uncertainties: standard deviation over ``--bootstrap`` resamples of the showers at each point.
   Also: σ/E of the sum with sampling, noise and threshold off (``--showers``/4 showers at 10, 30
   and 100 GeV), i.e. the fluctuations of the containment alone, which make the constant term.
4. **The recipe behind the 0.013 once quoted in docs/tasks.md**: 2000 showers log-uniform over
   1–100 GeV, the sum divided by its median response (sum/E over the whole sample), the relative
   resolution in 10 quantile bins of E (``labkit.tasks.binned_bias_resolution``, as the
   regression task bins its test set) and ``fit_stochastic_constant``; repeated for seeds
   0..``--recipe-seeds``−1 to show its scatter.

Run it from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/calo_limits.py                  # about 2 minutes on 2 cores
    .venv/bin/python benchmarks/calo_limits.py --showers 2000 --profile-showers 500   # quicker

Exit status 0 (it measures; there is no target to miss).

[GP] G. Grindhammer and S. Peters, hep-ex/0001020. PDG: Review of Particle Physics, "Passage of
particles through matter", electromagnetic cascades.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from labkit.sim import MATERIALS, simulate_calo
from labkit.tasks import binned_bias_resolution, fit_stochastic_constant

PB_LAR = MATERIALS["pb_lar"]
PROFILE_ENERGIES = (1.0, 3.0, 10.0, 30.0, 100.0)
RESOLUTION_ENERGIES = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 50.0, 100.0)
DEEP_LAYERS = 120
DEEP_THICKNESS = 0.5  # X0
DEEP_RADIAL = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 1e6)  # R_M
DEFAULT_DEPTH = 24.0  # X0: 12 layers of 2 X0
DEFAULT_RADIUS = 2.5  # R_M: the last default radial edge
SAMPLING = 0.10


def pdg_t95(energy: float) -> float:
    """PDG rule for 95 % longitudinal containment of an electron shower, in X0."""
    t_max = math.log(energy / PB_LAR.critical_energy) - 0.5
    return t_max + 0.08 * PB_LAR.z + 9.6


def average_profile(energy: float) -> tuple[float, float]:
    """``(T, α)`` of GFlash's average profile, [GP] appendix A.1.1 (as ``labkit.sim._calo`` has it)."""
    ln_y = math.log(energy / PB_LAR.critical_energy)
    return ln_y - 0.858, 0.21 + (0.492 + 2.38 / PB_LAR.z) * ln_y


def gamma_quantile(alpha: float, t_max: float, q: float) -> float:
    """The ``q`` quantile (X0) of the Gamma density with shape α and maximum at ``t_max``."""
    beta = (alpha - 1.0) / t_max
    t = np.linspace(0.0, 200.0, 400_001)
    log_dens = (
        (alpha - 1.0) * np.log(np.maximum(beta * t, 1e-300)) + math.log(beta) - beta * t - math.lgamma(alpha)
    )
    dens = np.exp(log_dens)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(t))])
    return float(np.interp(q, cdf / cdf[-1], t))


def _spread(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def containment(n: int, seed: int, bootstrap: int) -> None:
    print(f"1-2. Containment: {n} showers per energy on a grid of 120 × 0.5 X0, radial edges to 5 R_M")
    print("     and one to 1e6 R_M, no noise or threshold; ± = bootstrap standard deviation over the showers")
    header = (
        f"{'E GeV':>6} {'t95 sim':>13} {'t95 <GFlash>':>12} {'t95 PDG':>8} {'beyond 24 X0':>15} "
        f"{'within 1 R_M':>15} {'within 2 R_M':>15} {'5 R_M':>7} {'in 24X0×2.5RM':>13} {'seen/E':>7}"
    )
    print(header)
    layer_edges = np.arange(DEEP_LAYERS + 1) * DEEP_THICKNESS
    radial_edges = np.asarray(DEEP_RADIAL)
    in_24 = round(DEFAULT_DEPTH / DEEP_THICKNESS)
    in_1, in_2, in_5, in_grid_r = (
        int(np.searchsorted(radial_edges, r)) for r in (1.0, 2.0, 5.0, DEFAULT_RADIUS)
    )
    rng = np.random.default_rng(seed + 1000)
    for i, energy in enumerate(PROFILE_ENERGIES):
        sample = simulate_calo(
            n,
            seed=seed + i,
            energy_range=(energy, energy),
            layers=DEEP_LAYERS,
            layer_thickness=DEEP_THICKNESS,
            radial_edges=DEEP_RADIAL,
            angular_bins=1,
            noise=0.0,
            threshold=0.0,
        )
        cells = sample.showers.astype(np.float64)[:, :, :, 0]  # (n, layers, radial)

        def figures(c: np.ndarray) -> tuple[float, ...]:
            total = c.sum()
            profile = c.sum(axis=(0, 2))
            cum = np.concatenate([[0.0], np.cumsum(profile)]) / total
            t95 = float(np.interp(0.95, cum, layer_edges))
            beyond = 1.0 - float(cum[in_24])
            radial = c.sum(axis=(0, 1)) / total
            grid = float(c[:, :in_24, :in_grid_r].sum() / total)
            within = (float(radial[:k].sum()) for k in (in_1, in_2, in_5))
            return (t95, beyond, *within, grid)

        central = figures(cells)
        boot = [figures(cells[rng.integers(0, n, n)]) for _ in range(bootstrap)]
        err = [_spread([b[k] for b in boot]) for k in range(len(central))]
        t_avg, alpha_avg = average_profile(energy)
        t95_avg = gamma_quantile(alpha_avg, t_avg, 0.95)
        seen = float(cells.sum() / (n * energy))
        print(
            f"{energy:>6g} {central[0]:>6.2f} ± {err[0]:<4.2f} {t95_avg:>12.2f} {pdg_t95(energy):>8.2f} "
            f"{central[1]:>7.4f} ± {err[1]:.4f} {central[2]:>7.4f} ± {err[2]:.4f} "
            f"{central[3]:>7.4f} ± {err[3]:.4f} {central[4]:>7.4f} "
            f"{central[5]:>13.4f} {seen:>7.4f}"
        )
    print("     t95 sim: depth holding 95 % of the mean simulated profile; <GFlash>: the 95 % quantile")
    print("     of the average profile of [GP] A.1.1; PDG: t_max + 0.08 Z + 9.6, t_max = ln(E/E_c) − 0.5,")
    print("     Z = 64.75; radial fractions: of all the energy, at all depths; seen/E: all of it / E.")
    print()


Fit = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[float, ...]]


def _nonneg_lstsq(design: np.ndarray, target: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Least squares with every coefficient >= 0: drop the most negative one and refit until none is."""
    active = list(range(design.shape[1]))
    coef = np.zeros(design.shape[1])
    while active:
        sol, *_ = np.linalg.lstsq(design[:, active] * weight[:, None], target * weight, rcond=None)
        if (sol >= 0).all():
            coef[active] = sol
            return coef
        active.pop(int(np.argmin(sol)))
    return coef


def fit_unweighted(e: np.ndarray, r: np.ndarray, counts: np.ndarray) -> tuple[float, ...]:
    return fit_stochastic_constant(e, r)


def fit_chi2(e: np.ndarray, r: np.ndarray, counts: np.ndarray) -> tuple[float, ...]:
    # σ((σ/E)²) ≈ (σ/E)² √(2/(N−1)): weight each residual by the inverse of that.
    weight = np.sqrt((counts - 1) / 2.0) / r**2
    design = np.stack([1.0 / e, np.ones_like(e)], axis=1)
    return tuple(float(x) for x in np.sqrt(_nonneg_lstsq(design, r**2, weight)))


def fit_chi2_noise(e: np.ndarray, r: np.ndarray, counts: np.ndarray) -> tuple[float, ...]:
    weight = np.sqrt((counts - 1) / 2.0) / r**2
    design = np.stack([1.0 / e, np.ones_like(e), 1.0 / e**2], axis=1)
    return tuple(float(x) for x in np.sqrt(_nonneg_lstsq(design, r**2, weight)))


def fit_chi2_high(e: np.ndarray, r: np.ndarray, counts: np.ndarray) -> tuple[float, ...]:
    keep = e >= 10.0
    return fit_chi2(e[keep], r[keep], counts[keep])


FITS: dict[str, tuple[Fit, str]] = {
    "unweighted": (fit_unweighted, "a, b"),
    "chi2": (fit_chi2, "a, b"),
    "chi2 + c/E": (fit_chi2_noise, "a, b, c"),
    "chi2, E >= 10": (fit_chi2_high, "a, b"),
}


def _resolution(ratios: Sequence[np.ndarray]) -> np.ndarray:
    return np.array([x.std(ddof=1) / np.median(x) for x in ratios])


def resolution(n: int, seed: int, bootstrap: int) -> None:
    print(f"3. Full-readout resolution: sum of the cells of the default grid, {n} showers at each energy")
    print(f"{'E GeV':>6} {'response':>9} {'σ/E':>8} {'0.10/√E':>8} {'excess':>8}")
    energies = np.array(RESOLUTION_ENERGIES)
    ratios = []
    for i, energy in enumerate(energies):
        sample = simulate_calo(n, seed=seed + 100 + i, energy_range=(energy, energy))
        ratios.append(sample.showers.astype(np.float64).sum(axis=(1, 2, 3)) / energy)
    res = _resolution(ratios)
    counts = np.full(len(energies), float(n))
    for energy, x, r in zip(energies, ratios, res, strict=True):
        sampling = SAMPLING / math.sqrt(energy)
        excess = math.sqrt(max(r**2 - sampling**2, 0.0))
        print(f"{energy:>6g} {np.median(x):>9.4f} {r:>8.5f} {sampling:>8.5f} {excess:>8.5f}")
    print("     excess: √((σ/E)² − (0.10/√E)²), what is left over the simulator's sampling term")
    leak = []
    for i, energy in enumerate((10.0, 30.0, 100.0)):
        sample = simulate_calo(
            n // 4, seed=seed + 200 + i, energy_range=(energy, energy), sampling=0.0, noise=0.0, threshold=0.0
        )
        x = sample.showers.astype(np.float64).sum(axis=(1, 2, 3))
        leak.append(f"{x.std(ddof=1) / np.median(x):.4f} at {energy:g} GeV")
    print(
        f"     containment fluctuations alone (sampling 0, no noise, {n // 4} showers): σ/E = "
        + ", ".join(leak)
    )
    rng = np.random.default_rng(seed + 2000)
    boots = [_resolution([x[rng.integers(0, len(x), len(x))] for x in ratios]) for _ in range(bootstrap)]
    for name, (fit, labels) in FITS.items():
        central = fit(energies, res, counts)
        spread = [_spread([fit(energies, b, counts)[k] for b in boots]) for k in range(len(central))]
        text = ", ".join(
            f"{label} = {value:.4f} ± {err:.4f}"
            for label, value, err in zip(labels.split(", "), central, spread, strict=True)
        )
        print(f"   fit {name:<14} {text}")
    print()


def recipe(seeds: int) -> None:
    print("4. The docs/tasks.md recipe: 2000 showers log-uniform 1–100 GeV, sum / median response,")
    print("   10 quantile bins (binned_bias_resolution), fit_stochastic_constant; per seed:")
    values = []
    for seed in range(seeds):
        sample = simulate_calo(2000, seed=seed)
        total = sample.showers.astype(np.float64).sum(axis=(1, 2, 3))
        true = sample.incident_energy
        pred = total / np.median(total / true)
        centres, _, res, _ = binned_bias_resolution(true, pred, 10)
        values.append(fit_stochastic_constant(centres, res))
    for seed, (a, b) in enumerate(values):
        print(f"   seed {seed:>2}: a = {a:.4f}, b = {b:.4f}")
    a_all = [a for a, _ in values]
    b_all = [b for _, b in values]
    print(
        f"   over {seeds} seeds: a = {np.mean(a_all):.4f} ± {_spread(a_all):.4f}, "
        f"b = {np.mean(b_all):.4f} ± {_spread(b_all):.4f} (min {min(b_all):.4f}, max {max(b_all):.4f}); "
        f"{sum(b == 0 for b in b_all)} of {seeds} fits put b at 0"
    )
    print()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--profile-showers", type=int, default=2000, help="showers per energy for 1-2")
    parser.add_argument("--showers", type=int, default=10_000, help="showers per energy for 3")
    parser.add_argument(
        "--bootstrap", type=int, default=200, help="bootstrap resamples for the uncertainties"
    )
    parser.add_argument("--recipe-seeds", type=int, default=20, help="seeds of the 2000-shower recipe (4)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    containment(args.profile_showers, args.seed, args.bootstrap)
    resolution(args.showers, args.seed, args.bootstrap)
    recipe(args.recipe_seeds)
    print(f"wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
