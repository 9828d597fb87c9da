import math

import numpy as np

from segenc.quality import mse, psnr_from_mse, ssim


def test_identical_planes_are_perfect():
    a = np.random.default_rng(1).integers(0, 256, (64, 96), dtype=np.uint8)
    assert mse(a, a) == 0 and psnr_from_mse(0) == math.inf
    assert abs(ssim(a, a) - 1.0) < 1e-9


def test_psnr_matches_its_definition():
    a = np.full((32, 32), 100, np.uint8)
    b = a + 5  # every pixel off by 5: MSE 25
    assert mse(a, b) == 25
    assert abs(psnr_from_mse(25) - 10 * math.log10(255 ** 2 / 25)) < 1e-12


def test_ssim_falls_with_noise_and_is_symmetric():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    light = np.clip(a + rng.normal(0, 5, a.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert 1.0 > ssim(a, light) > ssim(a, heavy) > 0
    assert abs(ssim(a, heavy) - ssim(heavy, a)) < 1e-12
