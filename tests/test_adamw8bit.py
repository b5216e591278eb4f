"""sdvideo's fused 8-bit AdamW: its codes, its Triton kernel (through Triton's CPU interpreter) against
the tensor-op reference, and its training against torch's AdamW."""

import copy

import pytest
import torch

from sdvideo.training import adamw8bit
from sdvideo.training.adamw8bit import BLOCK, AdamW8bit, decode, encode, reference_update

needs_triton = pytest.mark.skipif(not (adamw8bit.HAVE_TRITON and adamw8bit.INTERPRETED),
                                  reason="Triton's interpreter (TRITON_INTERPRET=1, set by conftest) is not installed")


def spread_values(blocks: int, signed: bool) -> torch.Tensor:
    # magnitudes over 12 octaves in every block, the first value of each the block's largest
    g = torch.Generator().manual_seed(0)
    x = torch.exp2(-12 * torch.rand(blocks, BLOCK, generator=g))
    x[:, 0] = 1.0
    x = x * torch.exp2(torch.randint(-20, 20, (blocks, 1), generator=g).float())
    return x * torch.where(torch.rand(blocks, BLOCK, generator=g) < 0.5, -1.0, 1.0) if signed else x


@pytest.mark.parametrize("signed,bound", [(True, 2 ** (1 / 16) - 1), (False, 2 ** (1 / 32) - 1)])
def test_codes_keep_every_value_within_half_a_level(signed, bound) -> None:
    x = spread_values(64, signed)
    scale = x.abs().amax(dim=1)
    back = decode(encode(x, scale, signed), scale, signed)
    assert torch.equal(back.sign(), x.sign())
    assert ((back - x).abs() / x.abs()).max() <= bound * 1.0001
    assert torch.equal(back[:, 0], x[:, 0])  # the largest value is exact


def test_codes_flush_only_what_is_below_the_lowest_level() -> None:
    scale = torch.ones(1)
    x = torch.tensor([[0.0, 2.0 ** -15.7, 2.0 ** -16.5, -(2.0 ** -15.7), 1.0] + [0.0] * (BLOCK - 5)])
    m = decode(encode(x, scale, True), scale, True)[0, :5]
    assert m[0] == 0 and m[2] == 0 and m[1] > 0 and m[3] < 0 and m[4] == 1
    r = decode(encode(x.abs(), scale, False), scale, False)[0, :5]  # unsigned: 255 levels, down to 2^-15.9
    assert r[0] == 0 and r[1] > 0 and r[2] == 0 and r[4] == 1


def make_params() -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(1)
    big = torch.nn.Parameter(torch.randn(64, 32, 3, 3, generator=g))  # 18,432 values: 8-bit states, 72 blocks
    lean = torch.nn.Parameter(torch.randn(48, 40, 5, generator=g).transpose(1, 2).contiguous().transpose(1, 2))
    small = torch.nn.Parameter(torch.randn(300, generator=g))  # float32 states
    odd = torch.nn.Parameter(torch.randn(4396, generator=g))  # 8-bit, its last program a partial block
    return [big, lean, small, odd]  # lean: 9,600 values laid out (out, k, in), as the temporal convolutions are


def run_steps(params, steps: int, kernel: bool, **options) -> AdamW8bit:
    opt = AdamW8bit(params, lr=1e-2, weight_decay=0.1, **options)
    g = torch.Generator().manual_seed(2)
    for _ in range(steps):
        for p in params:
            p.grad = torch.empty_like(p).copy_(torch.randn(p.shape, generator=g) * torch.exp2(torch.randn(p.shape, generator=g)))
        if kernel:
            opt.step()
        else:
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(adamw8bit, "uses_kernel", lambda p, grad: False)
                opt.step()
    return opt


@needs_triton
def test_kernel_matches_the_tensor_op_reference() -> None:
    a, b = make_params(), make_params()
    
    opt_a, opt_b = run_steps(a, 3, kernel=True), run_steps(b, 3, kernel=False)
    assert all(adamw8bit.uses_kernel(p, p.grad) for p in a)  # the channels-last-like one too
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
        sa, sb = opt_a.state[p], opt_b.state[q]
        assert sa.keys() == sb.keys() and sa["step"] == sb["step"] == 3
        for key in sa:
            if key.endswith("scale"):
                torch.testing.assert_close(sa[key], sb[key], rtol=1e-5, atol=0)
            elif key != "step" and sa[key].dtype == torch.uint8:  # codes: equal but for rare ties in rounding
                assert (sa[key].int() - sb[key].int()).abs().le(1).all()
                assert (sa[key] != sb[key]).float().mean() < 1e-3
            elif key != "step":
                torch.testing.assert_close(sa[key], sb[key])


def test_states_take_two_bytes_a_value_and_small_tensors_stay_float32() -> None:
    params = make_params()
    opt = run_steps(params, 1, kernel=False)
    big, lean, small, _ = (opt.state[p] for p in params)
    assert big["exp_avg"].dtype == big["exp_avg_root"].dtype == torch.uint8
    assert big["exp_avg"].numel() == 18432 and big["exp_avg_scale"].numel() == 18432 // BLOCK
    assert lean["exp_avg"].numel() == 9728  # 9,600 rounded up to whole blocks
    assert small["exp_avg"].dtype == torch.float32 and small["exp_avg"].shape == (300,)


def test_first_step_matches_adamw_within_the_quantisation() -> None:
    params = make_params()
    reference = [torch.nn.Parameter(p.detach().clone()) for p in params]
    run_steps(params, 1, kernel=False)
    opt = torch.optim.AdamW(reference, lr=1e-2, weight_decay=0.1)
    g = torch.Generator().manual_seed(2)
    for p in reference:
        p.grad = torch.randn(p.shape, generator=g) * torch.exp2(torch.randn(p.shape, generator=g))
    opt.step()
    for p, q in zip(params, reference):  # first step: m / sqrt(v) = sign(g), each moment within its level
        torch.testing.assert_close(p, q, rtol=0, atol=1e-2 * 0.07)


def test_trains_a_regression_as_well_as_adamw(monkeypatch) -> None:
    monkeypatch.setattr(adamw8bit, "uses_kernel", lambda p, grad: False)  # the reference: the kernel's twin, faster here
    torch.manual_seed(0)
    x = torch.randn(512, 96)
    w_true = torch.randn(96, 64)
    y = x @ w_true + 0.01 * torch.randn(512, 64)
    losses = {}
    for name in ("adamw", "adamw8bit"):
        model = torch.nn.Sequential(torch.nn.Linear(96, 128), torch.nn.GELU(), torch.nn.Linear(128, 64))
        torch.manual_seed(1)
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.05)
        cls = torch.optim.AdamW if name == "adamw" else AdamW8bit
        opt = cls(model.parameters(), lr=3e-3, weight_decay=0.01)
        for _ in range(300):
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        losses[name] = loss.item()
    start = torch.nn.functional.mse_loss(torch.zeros_like(y), y).item()
    assert losses["adamw"] < 0.05 * start, losses
    assert losses["adamw8bit"] < 1.25 * losses["adamw"], losses


def test_state_dict_round_trip_continues_identically() -> None:
    a = make_params()
    opt = run_steps(a, 2, kernel=False)
    saved = copy.deepcopy(opt.state_dict())
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    restored = AdamW8bit(b, lr=1e-2, weight_decay=0.1)
    restored.load_state_dict(saved)
    for p, q in zip(a, b):
        p.grad = torch.ones_like(p)
        q.grad = torch.ones_like(q)
    opt.step()
    restored.step()
    for p, q in zip(a, b):
        assert torch.equal(p, q)
    assert restored.state[b[0]]["step"] == 3
    assert restored.state[b[0]]["exp_avg"].dtype == restored.state[b[0]]["exp_avg_root"].dtype == torch.uint8


def test_refuses_half_precision_parameters() -> None:
    p = torch.nn.Parameter(torch.zeros(10, dtype=torch.bfloat16))
    p.grad = torch.ones_like(p)
    with pytest.raises(TypeError, match="float32"):
        AdamW8bit([p]).step()


def test_checkpoint_round_trip_and_another_optimizers_state_is_refused(tmp_path) -> None:
    from sdvideo.training.checkpoint import load_checkpoint, save_checkpoint

    model = torch.nn.Linear(80, 64)  # a 5,120-value weight (8-bit states) and a 64-value bias (float32)
    opt = AdamW8bit(model.parameters(), lr=1e-2)
    model(torch.randn(4, 80)).square().mean().backward()
    opt.step()
    path = save_checkpoint(tmp_path, 1, model, opt, {}, None, {})
    assert (path / "optimizer.safetensors").exists()  # plain tensors: no pickle
    fresh = torch.nn.Linear(80, 64)
    fresh_opt = AdamW8bit(fresh.parameters(), lr=1e-2)
    load_checkpoint(path, fresh, fresh_opt, torch.device("cpu"))
    for a, b in zip(model.parameters(), fresh.parameters()):
        a.grad, b.grad = torch.ones_like(a), torch.ones_like(b)
    opt.step()
    fresh_opt.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters()))
    assert fresh_opt.state[fresh.weight]["step"] == 2 and fresh_opt.state[fresh.weight]["exp_avg"].dtype == torch.uint8

    adamw = torch.optim.AdamW(model.parameters())
    adamw.step()
    other = save_checkpoint(tmp_path / "adamw", 1, model, adamw, {}, None, {})
    with pytest.raises(ValueError, match=r"adamw.*exp_avg_sq.*--optimizer adamw"):
        load_checkpoint(other, fresh, AdamW8bit(fresh.parameters()), torch.device("cpu"))
