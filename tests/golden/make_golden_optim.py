#!/usr/bin/python3
"""Golden values for tests/check_optim.c: torch.optim SGD / Adam / AdamW steps (float64) and
torch.optim.lr_scheduler learning rates, from fixed float32-representable inputs.

Writes ../data/golden_optim.h5:
  p0 (n,), grads (STEPS, n)                 float32 inputs
  <opt>/p, <opt>/m, <opt>/v (STEPS, n)      float64 params and state after each step
                                            (m: momentum_buffer or exp_avg, v: exp_avg_sq)
  clip/g (n,), clip/total_norm, clip/g_clipped   clip_grad_norm_(max_norm=2.5)
  lr/<schedule> (LR_STEPS,)                 get_last_lr()[0] before each scheduler.step()
The C test holds the matching hyper-parameter tables (tests/check_optim.c).
Run: cd tests/golden && /usr/bin/python3 make_golden_optim.py
"""
import os

import h5py
import numpy as np
import torch
from torch.optim import lr_scheduler as S

torch.manual_seed(20240601)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "golden_optim.h5")
N, STEPS, LR_STEPS = 37, 5, 50

p0 = torch.randn(N, dtype=torch.float32).double()
grads = torch.randn(STEPS, N, dtype=torch.float32).double()

OPTIMIZERS = {
    "sgd_plain": lambda ps: torch.optim.SGD(ps, lr=0.1),
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
    "sgd_damp_wd": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, dampening=0.3,
                                              weight_decay=0.01),
    "sgd_nesterov_wd": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True,
                                                  weight_decay=0.05),
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2),
    "adam_l2": lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99), eps=1e-6,
                                           weight_decay=0.1),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.05),
}


def run_optimizer(f, name, make):
    p = p0.clone().requires_grad_(True)
    opt = make([p])
    ps, ms, vs = [], [], []
    for t in range(STEPS):
        p.grad = grads[t].clone()
        opt.step()
        st = opt.state[p]
        ps.append(p.detach().clone())
        ms.append(st.get("momentum_buffer", st.get("exp_avg", torch.zeros(N, dtype=torch.float64))))
        ms[-1] = (ms[-1] if ms[-1] is not None else torch.zeros(N, dtype=torch.float64)).clone()
        vs.append(st.get("exp_avg_sq", torch.zeros(N, dtype=torch.float64)).clone())
    g = f.create_group(name)
    g.create_dataset("p", data=torch.stack(ps).numpy())
    g.create_dataset("m", data=torch.stack(ms).numpy())
    g.create_dataset("v", data=torch.stack(vs).numpy())


def warm(opt, main, steps, start):
    first = S.LinearLR(opt, start_factor=start, end_factor=1.0, total_iters=steps)
    return S.SequentialLR(opt, [first, main(opt)], milestones=[steps])


SCHEDULES = {
    "constant_warm": lambda o: warm(o, lambda o2: S.LambdaLR(o2, lambda e: 1.0), 5, 0.1),
    "step": lambda o: S.StepLR(o, step_size=7, gamma=0.5),
    "step_warm": lambda o: warm(o, lambda o2: S.StepLR(o2, step_size=10, gamma=0.3), 3, 0.25),
    "cosine": lambda o: S.CosineAnnealingLR(o, T_max=20, eta_min=1e-3),
    "cosine_warm": lambda o: warm(o, lambda o2: S.CosineAnnealingLR(o2, T_max=45), 5, 0.2),
    "poly": lambda o: S.PolynomialLR(o, total_iters=40, power=0.9),
    "poly_warm": lambda o: warm(o, lambda o2: S.PolynomialLR(o2, total_iters=46, power=0.9), 4,
                                0.1),
}


def run_schedule(f, name, make):
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make(opt)
    lrs = []
    for _ in range(LR_STEPS):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    f.create_dataset("lr/" + name, data=np.array(lrs))


with h5py.File(OUT, "w") as f:
    f.attrs["torch_version"] = str(torch.__version__)
    f.create_dataset("p0", data=p0.float().numpy())
    f.create_dataset("grads", data=grads.float().numpy())
    for name, make in OPTIMIZERS.items():
        run_optimizer(f, name, make)
    g = (torch.randn(N, dtype=torch.float32) * 3).double()  # float32-representable
    gp = torch.nn.Parameter(torch.zeros(N, dtype=torch.float64))
    gp.grad = g.clone()
    total = torch.nn.utils.clip_grad_norm_([gp], max_norm=2.5)
    f.create_dataset("clip/g", data=g.float().numpy())
    f.create_dataset("clip/total_norm", data=np.array([float(total)]))
    f.create_dataset("clip/g_clipped", data=gp.grad.numpy())
    for name, make in SCHEDULES.items():
        run_schedule(f, name, make)
print("wrote", os.path.normpath(OUT))
