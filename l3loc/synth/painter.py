"""Rasterise analytic shapes into a canonical int16 HU volume, cheaply.

Shapes are painted in order (later ones cover earlier ones, like tissue covering tissue). Two
kinds cover everything a phantom needs:

- ``ellipse``: an axial ellipse (optionally an annulus or an arc of one) whose centre and semi-axes
  are functions of z, between two z levels. Vertical or slowly varying structures: body outline,
  organs, vertebral bodies and discs, femoral shafts.
- ``tube``: a polyline of spheres (a rib, a clavicle, a femoral neck), with an optional marrow
  core inside a cortical shell.

Slice thickness is modelled exactly along z: a slice of thickness ``t`` centred at ``z`` sees the
fraction of ``[z - t/2, z + t/2]`` a shape covers, and blends its HU with what lies beneath
(partial volume). That is what makes endplates, discs and ribs look right at 5 mm. The thickness may
exceed the spacing of the slices (an overlapping reconstruction): neighbouring slices then share
anatomy, as they do in such scans.

Bone texture: a shape may be painted with a :class:`Texture`, a smooth random field that
modulates its value voxel by voxel (``hu * (1 + field)``), sampled from a small periodic 3-D table
in mm coordinates. In a maximum-intensity projection a ray through a textured shell picks the
maximum of the few samples it crosses, while a ray running along the shell (its edge, an
endplate) picks the maximum of many: edges read brighter than the interior, as cortical rims do
in real CT.

Cost control: every shape is evaluated only inside its bounding box, in chunks of slices, on
float32 temporaries; the volume itself stays int16.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from scipy.ndimage import gaussian_filter

ZFunc = Callable[[np.ndarray], np.ndarray]
_CHUNK = 32  # slices per vectorised step: enough to hide Python overhead, small temporaries
_TUBE_GROUP = 12  # spheres per vectorised step of a tube


class Lin:
    """A piecewise-linear function of z from control points ``[(z, value), ...]`` (any order),
    constant beyond the end points."""

    def __init__(self, points):
        pts = sorted((float(z), float(v)) for z, v in points)
        self.z = np.array([p[0] for p in pts])
        self.v = np.array([p[1] for p in pts])

    def __call__(self, z):
        return np.interp(z, self.z, self.v)


def as_func(value) -> ZFunc:
    """A number or a function of z -> a vectorised function of z."""
    if callable(value):
        return value
    return lambda z, c=float(value): np.full(np.shape(z), c)


@dataclass(frozen=True)
class Texture:
    """A smooth random field of relative density variation, periodic in all three axes.

    Attributes:
        table: [N, N, N] float32 (axes z, y, x): a zero-mean, unit-variance field clipped below.
        cell_mm: edge of one table cell (mm); the field repeats every ``N * cell_mm``.
        amp: relative amplitude: a shape painted with value ``hu`` gets ``hu * (1 + amp * field)``.
        origin_mm: (z, y, x) offset of the table (mm); shapes given differently moved textures
            look unrelated although they share a table.
    """

    table: np.ndarray
    cell_mm: float
    amp: float = 0.0
    origin_mm: tuple = (0.0, 0.0, 0.0)

    @staticmethod
    def make(rng: np.random.Generator, size: int = 64, cell_mm: float = 1.0,
             scales_cells: tuple = ((0.9, 0.6), (4.0, 0.8)), floor: float = -0.4) -> "Texture":
        """A table of ``size``^3 cells: white noise smoothed at each scale (Gaussian sigma in
        cells, periodic), each normalised to unit standard deviation, weighted, summed,
        normalised again and clipped below at ``floor``.

        Args:
            rng: random generator.
            size: cells per axis (the table costs ``4 * size**3`` bytes).
            cell_mm: cell edge (mm).
            scales_cells: ((sigma in cells, weight), ...): fine grain (trabeculae) and regional
                density variation.
            floor: lowest table value (standard deviations). Bone is textured upwards (denser
                trabeculae, thicker cortex) more than downwards, so a textured value never falls
                below ``hu * (1 + amp * floor)``: cancellous bone stays brighter than a disc.
        """
        table = np.zeros((size,) * 3, dtype=np.float32)
        for sigma, weight in scales_cells:
            part = gaussian_filter(rng.standard_normal((size,) * 3, dtype=np.float32), sigma, mode="wrap")
            part -= part.mean()   # a smooth field over few cells has a mean far from 0
            table += weight * part / part.std()
        table /= table.std()
        np.maximum(table, np.float32(floor), out=table)
        return Texture(table, float(cell_mm))

    def moved(self, rng: np.random.Generator, amp: float) -> "Texture":
        """The same table at a random offset, with relative amplitude ``amp``."""
        period = self.table.shape[0] * self.cell_mm
        return replace(self, amp=float(amp), origin_mm=tuple(float(o) for o in rng.uniform(0, period, 3)))

    def _index(self, coords_mm: np.ndarray, axis: int) -> np.ndarray:
        n = self.table.shape[axis]
        return (np.floor((np.asarray(coords_mm, dtype=np.float64) + self.origin_mm[axis]) / self.cell_mm)
                .astype(np.int64) % n)

    def factor_grid(self, z_mm: np.ndarray, y_mm: np.ndarray, x_mm: np.ndarray) -> np.ndarray:
        """``1 + amp * field`` on the grid z x y x x: [len(z), len(y), len(x)] float32."""
        n = self.table.shape[0]
        iz, iy, ix = self._index(z_mm, 0), self._index(y_mm, 1), self._index(x_mm, 2)
        flat = (iz[:, None, None] * n + iy[None, :, None]) * n + ix[None, None, :]
        return 1.0 + np.float32(self.amp) * self.table.take(flat)

    def factor_points(self, z_mm: np.ndarray, y_mm: np.ndarray, x_mm: np.ndarray) -> np.ndarray:
        """``1 + amp * field`` at points (equal-length 1-D arrays): float32."""
        n = self.table.shape[0]
        flat = (self._index(z_mm, 0) * n + self._index(y_mm, 1)) * n + self._index(x_mm, 2)
        return 1.0 + np.float32(self.amp) * self.table.take(flat)


def overlap_fraction(z_lo: np.ndarray, z_hi: np.ndarray, z: np.ndarray, thickness_mm: float) -> np.ndarray:
    """Fraction of each slice ``[z - t/2, z + t/2]`` inside ``[z_lo, z_hi]`` (broadcasting)."""
    lo = np.maximum(z_lo, z - 0.5 * thickness_mm)
    hi = np.minimum(z_hi, z + 0.5 * thickness_mm)
    return np.clip((hi - lo) / thickness_mm, 0.0, 1.0)


class Painter:
    """Paints shapes into ``hu[slice, row, col]`` (canonical; int16, modified in place).

    Args:
        hu: [S, R, C] int16 volume, e.g. filled with air (-1000).
        slice_z_mm: (S,) z of each slice centre (mm, +superior; decreasing with the index),
            evenly spaced.
        thickness_mm: slice thickness (mm): the spacing, or more when slices overlap.
        x_mm: (C,) x of each column centre (mm, patient right -> left).
        y_mm: (R,) y of each row centre (mm, anterior -> posterior).
    """

    def __init__(self, hu, slice_z_mm, thickness_mm, x_mm, y_mm):
        self.hu = hu
        self.z = np.asarray(slice_z_mm, dtype=np.float64)
        self.t = float(thickness_mm)
        self.dz = float(abs(self.z[1] - self.z[0])) if len(self.z) > 1 else self.t   # slice spacing
        self.x = np.asarray(x_mm, dtype=np.float32)
        self.y = np.asarray(y_mm, dtype=np.float32)
        self.dx = float(abs(self.x[1] - self.x[0]))
        self.dy = float(abs(self.y[1] - self.y[0]))
        self._offsets = {}   # (radius, z radius) -> sphere voxel offsets

    def _slices(self, z_lo: float, z_hi: float) -> tuple[int, int]:
        """Index range [i0, i1) of the slices overlapping [z_lo, z_hi]."""
        half = 0.5 * self.t
        # z decreases with the index
        i0 = int(np.searchsorted(-self.z, -(z_hi + half), side="right"))
        i1 = int(np.searchsorted(-self.z, -(z_lo - half), side="left"))
        return max(i0, 0), min(i1, len(self.z))

    def _index_range(self, coords: np.ndarray, lo: float, hi: float) -> tuple[int, int]:
        step = coords[1] - coords[0]
        i0 = int(np.floor((lo - coords[0]) / step))
        i1 = int(np.ceil((hi - coords[0]) / step)) + 1
        return max(i0, 0), min(i1, len(coords))

    def _blend(self, sub: np.ndarray, mask: np.ndarray, hu, frac: np.ndarray) -> None:
        """sub[k][mask[k]] = (1 - frac[k]) * sub + frac[k] * hu, exact assignment where frac = 1.

        ``hu`` is a number or an array of ``sub``'s shape (a textured value per voxel)."""
        const = np.ndim(hu) == 0
        val = np.int16(round(hu)) if const else np.rint(np.clip(hu, -32768, 32767)).astype(np.int16)
        full = frac >= 1.0
        if full.all():
            np.copyto(sub, val, where=mask)
            return
        for k in np.flatnonzero(full):
            np.copyto(sub[k], val if const else val[k], where=mask[k])
        for k in np.flatnonzero(~full & (frac > 0)):
            m = mask[k]
            h = hu if const else hu[k][m]
            sub[k][m] = np.rint(sub[k][m] * (1.0 - frac[k]) + h * frac[k]).astype(np.int16)

    def ellipse(self, z_lo: float, z_hi: float, cx, cy, a, b, hu: float,
                inner: float | None = None, arc_deg: tuple[float, float] | None = None,
                taper_mm: float = 0.0, texture: Texture | None = None, tilt: tuple | None = None) -> None:
        """Paint an axial ellipse between ``z_lo`` and ``z_hi`` (mm).

        Args:
            z_lo, z_hi: z extent (mm, body frame of the slices).
            cx, cy: centre (mm), numbers or functions of z.
            a, b: semi-axes along x (left-right) and y (anterior-posterior), mm, numbers or
                functions of z; a non-positive semi-axis paints nothing in that slice.
            hu: value.
            inner: if given, paint only the annulus outside the ellipse scaled by ``inner``
                (0 < inner < 1).
            arc_deg: if given, paint only polar angles in this range; angle 0 = +x (towards
                the patient's left), 90 = +y (posterior), measured in the ellipse's own frame.
            taper_mm: shrink the radii like an ellipsoid cap within this distance of both ends.
            texture: if given, the value varies voxel by voxel as ``hu * texture.factor``.
            tilt: ``((k_lo, y_lo), (k_hi, y_hi))``: the lower and upper ends are planes leaning
                along y, ``z_lo + k_lo (y - y_lo)`` and ``z_hi + k_hi (y - y_hi)`` (a wedged
                vertebral body or disc: k = tan of the endplate's angle, positive when its
                anterior edge is lower). Each voxel then takes the fraction of its slice between
                the two planes at its row: a leaning edge in thick slices becomes the stair-step
                of partial volumes real scans show.
        """
        fcx, fcy, fa, fb = as_func(cx), as_func(cy), as_func(a), as_func(b)
        zs_lo, zs_hi = z_lo, z_hi          # the z range the planes reach over the shape
        if tilt is not None:
            (k_lo, y_lo), (k_hi, y_hi) = tilt
            zq = np.linspace(z_lo, z_hi, 5)
            ys = np.concatenate([fcy(zq) - fb(zq), fcy(zq) + fb(zq)])
            zs_lo = z_lo + float(min(k_lo * (ys - y_lo)))
            zs_hi = z_hi + float(max(k_hi * (ys - y_hi)))
        i0, i1 = self._slices(zs_lo, zs_hi)
        if i0 >= i1:
            return
        for c0 in range(i0, i1, _CHUNK):
            c1 = min(c0 + _CHUNK, i1)
            z = self.z[c0:c1]
            frac = overlap_fraction(zs_lo, zs_hi, z, self.t)
            zc = np.clip(z, zs_lo, zs_hi)
            ax, bx = fa(zc), fb(zc)
            if taper_mm > 0:
                d = np.minimum(zc - zs_lo, zs_hi - zc)
                shrink = np.sqrt(np.clip(1 - (1 - np.clip(d / taper_mm, 0, 1)) ** 2, 0, 1))
                ax, bx = ax * shrink, bx * shrink
            ok = (ax > 0) & (bx > 0) & (frac > 0)
            if not ok.any():
                continue
            ccx, ccy = fcx(zc), fcy(zc)
            if arc_deg is None:
                ext = np.array([[-1.0, 1.0], [-1.0, 1.0]])
            else:  # bounding box of the arc only (the inner edge lies within the outer one's hull)
                lo, hi = arc_deg
                phi = np.radians(lo + np.linspace(0.0, (hi - lo) % 360.0, 91))
                cs = np.concatenate([np.cos(phi), inner * np.cos(phi) if inner else [0.0]])
                sn = np.concatenate([np.sin(phi), inner * np.sin(phi) if inner else [0.0]])
                ext = np.array([[cs.min(), cs.max()], [sn.min(), sn.max()]])
            c_lo, c_hi = self._index_range(self.x, float((ccx + ext[0, 0] * ax)[ok].min()), float((ccx + ext[0, 1] * ax)[ok].max()))
            r_lo, r_hi = self._index_range(self.y, float((ccy + ext[1, 0] * bx)[ok].min()), float((ccy + ext[1, 1] * bx)[ok].max()))
            if c_lo >= c_hi or r_lo >= r_hi:
                continue
            ax = np.where(ok, ax, 1.0)
            bx = np.where(ok, bx, 1.0)
            u = ((self.x[None, c_lo:c_hi] - ccx[:, None]) / ax[:, None]).astype(np.float32)
            v = ((self.y[None, r_lo:r_hi] - ccy[:, None]) / bx[:, None]).astype(np.float32)
            u2, v2 = u * u, v * v
            # one broadcast comparison, no 3-D float temporary: v^2 <= 1 - u^2
            mask = v2[:, :, None] <= (1.0 - u2)[:, None, :]
            if inner is not None:
                mask &= v2[:, :, None] > (inner * inner - u2)[:, None, :]
            if arc_deg is not None:
                ang = np.degrees(np.arctan2(v[:, :, None], u[:, None, :]))
                lo, hi = arc_deg
                mask &= ((ang - lo) % 360.0) <= ((hi - lo) % 360.0)
            value = hu if texture is None else \
                hu * texture.factor_grid(z, self.y[r_lo:r_hi], self.x[c_lo:c_hi])
            sub = self.hu[c0:c1, r_lo:r_hi, c_lo:c_hi]
            if tilt is None:
                # the slices the shape misses (ok False) get no paint through frac = 0: cheaper
                # than clearing their mask (a broadcast AND over the whole box)
                self._blend(sub, mask, value, frac * ok)
                continue
            mask[~ok] = False
            yr = self.y[r_lo:r_hi].astype(np.float64)[None, :]
            f = overlap_fraction(z_lo + k_lo * (yr - y_lo), z_hi + k_hi * (yr - y_hi), z[:, None], self.t)
            m = mask & (f > 0)[:, :, None]
            fv = np.broadcast_to(f[:, :, None], sub.shape)[m]
            h = value if np.ndim(value) == 0 else value[m]
            sub[m] = np.rint(sub[m] * (1.0 - fv) + h * fv).astype(np.int16)

    def tube(self, points_mm, radius_mm: float, hu: float, core_hu: float | None = None,
             cortex_mm: float = 1.5, texture: Texture | None = None,
             z_radius_mm: float | None = None) -> None:
        """Paint a tube along a polyline, as overlapping spheres (spheroids if ``z_radius_mm``
        differs from ``radius_mm``), with exact slice-thickness partial volume: each voxel takes
        the fraction of its slice inside the tube.

        Args:
            points_mm: (n, 3) polyline vertices (x, y, z) in mm.
            radius_mm: tube radius (mm) in the axial plane.
            hu: value of the tube (of its cortical shell if ``core_hu`` is given).
            core_hu: value of the core (marrow) inside a shell of ``cortex_mm``.
            cortex_mm: shell thickness (mm).
            texture: if given, both values vary voxel by voxel as ``value * texture.factor``.
            z_radius_mm: half-height of the tube along z (default ``radius_mm``: round). A
                near-level tube with a larger half-height has a tall, flat cross-section.
        """
        p = np.asarray(points_mm, dtype=np.float64)
        # resample so that neighbouring spheres overlap (step 0.7 r: between two centres the
        # union's radius is still 94 % of r)
        seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        n = max(int(np.ceil(s[-1] / (0.7 * radius_mm))) + 1, 2)
        si = np.linspace(0.0, s[-1], n)
        pts = np.stack([np.interp(si, s, p[:, k]) for k in range(3)], axis=1)
        z_radius_mm = radius_mm if z_radius_mm is None else z_radius_mm
        # groups of spheres keep each group's bounding box (and its dense buffers) small; the
        # group boundaries share a sphere so the tube stays closed
        for g0 in range(0, max(n - 1, 1), _TUBE_GROUP - 1):
            self._spheres(pts[g0:g0 + _TUBE_GROUP], radius_mm, z_radius_mm, hu, core_hu, cortex_mm, texture)

    def _sphere_offsets(self, radius_mm: float, z_radius_mm: float) -> tuple[np.ndarray, ...]:
        """Voxel offsets (dz, dy, dx) that can reach a spheroid centred within half a voxel of
        its nearest voxel centre (the cube's corners are left out); a slice reaches it when its
        profile (half a thickness either side of its centre) does. Cached: a case paints many
        groups of spheres of a few radii."""
        key = (radius_mm, z_radius_mm)
        if key not in self._offsets:
            kz = int(np.floor((z_radius_mm + 0.5 * self.t) / self.dz + 0.5))
            ky = int(np.ceil(radius_mm / self.dy))
            kx = int(np.ceil(radius_mm / self.dx))
            oz, oy, ox = np.meshgrid(np.arange(-kz, kz + 1), np.arange(-ky, ky + 1), np.arange(-kx, kx + 1), indexing="ij")
            reach = ((np.maximum(np.abs(oy) - 0.5, 0) * self.dy) ** 2 + (np.maximum(np.abs(ox) - 0.5, 0) * self.dx) ** 2
                     <= radius_mm ** 2) & (np.maximum(np.abs(oz) - 0.5, 0) * self.dz - 0.5 * self.t <= z_radius_mm)
            self._offsets[key] = tuple(o[reach].astype(np.int32) for o in (oz, oy, ox))
        return self._offsets[key]

    def _spheres(self, pts, radius_mm, z_radius_mm, hu, core_hu, cortex_mm, texture) -> None:
        i0, i1 = self._slices(pts[:, 2].min() - z_radius_mm, pts[:, 2].max() + z_radius_mm)
        c0, c1 = self._index_range(self.x, pts[:, 0].min() - radius_mm, pts[:, 0].max() + radius_mm)
        r0, r1 = self._index_range(self.y, pts[:, 1].min() - radius_mm, pts[:, 1].max() + radius_mm)
        if i0 >= i1 or c0 >= c1 or r0 >= r1:
            return
        # all spheres at once: each sphere's centre voxel plus the offsets that can reach it
        oz, oy, ox = self._sphere_offsets(radius_mm, z_radius_mm)
        zi = np.rint((self.z[0] - pts[:, 2]) / self.dz).astype(np.int32)
        yi = np.rint((pts[:, 1] - self.y[0]) / (self.y[1] - self.y[0])).astype(np.int32)
        xi = np.rint((pts[:, 0] - self.x[0]) / (self.x[1] - self.x[0])).astype(np.int32)
        Z = zi[:, None] + oz[None, :]
        Y = yi[:, None] + oy[None, :]
        X = xi[:, None] + ox[None, :]
        ok = (Z >= i0) & (Z < i1) & (Y >= r0) & (Y < r1) & (X >= c0) & (X < c1)
        owner = np.nonzero(ok)[0]
        Z, Y, X = Z[ok], Y[ok], X[ok]
        pf = pts.astype(np.float32)
        rho2 = (self.y[Y] - pf[owner, 1]) ** 2 + (self.x[X] - pf[owner, 0]) ** 2
        dz = (self.z[Z] - pts[owner, 2]).astype(np.float32)
        shape = (i1 - i0, r1 - r0, c1 - c0)
        flat = ((Z - i0).astype(np.int64) * shape[1] + (Y - r0)) * shape[2] + (X - c0)
        fracs = []
        radii = [(radius_mm, z_radius_mm)]
        if core_hu is not None:
            radii.append((radius_mm - cortex_mm, z_radius_mm - cortex_mm))
        for rad, zrad in radii:
            # half-height of the spheroid above the voxel's axial position
            h = np.float32(zrad / rad) * np.sqrt(np.maximum(np.float32(rad * rad) - rho2, 0.0))
            f = overlap_fraction(-h, h, dz, self.t).astype(np.float32)
            buf = np.zeros(shape[0] * shape[1] * shape[2], dtype=np.float32)
            np.maximum.at(buf, flat, f)
            fracs.append(buf.reshape(shape))
        f_out = fracs[0]
        f_in = fracs[1] if core_hu is not None else None
        idx = np.nonzero(f_out > 0)
        if not idx[0].size:
            return
        vol = self.hu[i0:i1, r0:r1, c0:c1]
        fo = f_out[idx]
        t = 1.0 if texture is None else \
            texture.factor_points(self.z[idx[0] + i0], self.y[idx[1] + r0], self.x[idx[2] + c0])
        val = vol[idx] * (1.0 - fo) + hu * t * fo
        if f_in is not None:
            fi = np.minimum(f_in[idx], fo)
            val += (core_hu - hu) * t * fi
        vol[idx] = np.rint(val).astype(np.int16)

    def box(self, z_lo: float, z_hi: float, x_lo: float, x_hi: float, y_lo: float, y_hi: float,
            hu: float) -> None:
        """Paint an axis-aligned box (mm)."""
        i0, i1 = self._slices(z_lo, z_hi)
        c0, c1 = self._index_range(self.x, x_lo, x_hi)
        r0, r1 = self._index_range(self.y, y_lo, y_hi)
        if i0 >= i1 or c0 >= c1 or r0 >= r1:
            return
        cols = (self.x[c0:c1] >= x_lo) & (self.x[c0:c1] <= x_hi)
        rows = (self.y[r0:r1] >= y_lo) & (self.y[r0:r1] <= y_hi)
        mask = np.broadcast_to(rows[None, :, None] & cols[None, None, :], (i1 - i0, r1 - r0, c1 - c0))
        frac = overlap_fraction(z_lo, z_hi, self.z[i0:i1], self.t)
        self._blend(self.hu[i0:i1, r0:r1, c0:c1], mask, hu, frac)

    def rod(self, axis: str, zc: float, across_c: float, along_lo: float, along_hi: float,
            rz: float, r_across: float, hu: float, core_hu: float | None = None,
            cortex_mm: float = 1.2) -> None:
        """Paint an open-ended horizontal rod of elliptic cross-section: a pedicle (along y) or a
        transverse process (along x). Its ends are cut flat, with no cortical cap, so a
        projection along its axis sees the shell as a bright ring around a darker core (the
        pedicle ovals of a frontal view).

        Args:
            axis: "y" (anterior-posterior) or "x" (left-right): the rod's direction.
            zc: z of the axis (mm).
            across_c: the axis' position on the other in-plane coordinate (x for a "y" rod).
            along_lo, along_hi: extent along the axis (mm).
            rz, r_across: semi-axes of the cross-section along z and across (mm).
            hu: value of the shell (of the whole rod if ``core_hu`` is None).
            core_hu: value inside a shell of ``cortex_mm``.
            cortex_mm: shell thickness (mm).
        """
        i0, i1 = self._slices(zc - rz, zc + rz)
        along, across = (self.y, self.x) if axis == "y" else (self.x, self.y)
        a0, a1 = self._index_range(along, along_lo, along_hi)
        c0, c1 = self._index_range(across, across_c - r_across, across_c + r_across)
        if i0 >= i1 or a0 >= a1 or c0 >= c1:
            return
        keep = (along[a0:a1] >= along_lo) & (along[a0:a1] <= along_hi)
        dz = self.z[i0:i1, None]
        fracs = []
        for shrink in (0.0, cortex_mm) if core_hu is not None else (0.0,):
            r_a, r_z = r_across - shrink, rz - shrink
            uu = (across[c0:c1] - across_c) / max(r_a, 1e-6)
            h = r_z * np.sqrt(np.clip(1.0 - uu * uu, 0.0, None)) * (np.abs(uu) <= 1)
            fracs.append(overlap_fraction(zc - h[None, :], zc + h[None, :], dz, self.t).astype(np.float32))
        f_out = fracs[0]                                   # [slices, across]
        if not (f_out > 0).any():
            return
        sub = self.hu[i0:i1, a0:a1, c0:c1] if axis == "y" else self.hu[i0:i1, c0:c1, a0:a1]
        # broadcast [slices, across] along the rod's axis
        fo = f_out[:, None, :] if axis == "y" else f_out[:, :, None]
        val = hu * fo
        if core_hu is not None:
            fi = np.minimum(fracs[1], f_out)
            val = val + (core_hu - hu) * (fi[:, None, :] if axis == "y" else fi[:, :, None])
        k = keep[None, :, None] if axis == "y" else keep[None, None, :]
        new = np.rint(sub * (1.0 - fo) + val).astype(np.int16)
        np.copyto(sub, new, where=k & (fo > 0))
