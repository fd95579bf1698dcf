"""Fixtures shared by the unit tests."""

import pytest
import torch


@pytest.fixture
def float64():
    """Compute in float64, where closed forms and autograd agree to rounding."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
