#!/usr/bin/python3
"""PyTorch CPU reference for bench_nn.c: the same shapes, same steps.

Prints one JSON object: {"torch": version, "threads": n, "resnet_step_s": t,
"resnet_step_cpu_s": t, "siren_step_s": t, "siren_step_cpu_s": t,
"conv": {name: seconds fwd+bwd}} (best of N repeats; *_cpu_s: process CPU
time of all threads).
Usage: torch_nn.py THREADS REPEATS BATCH SIZE POINTS
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

threads, reps, batch, size, points = (int(a) for a in sys.argv[1:6])
torch.set_num_threads(threads)
torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        o = F.relu(self.bn1(self.conv1(x)))
        o = self.bn2(self.conv2(o))
        return F.relu(o + (self.downsample(x) if self.downsample is not None else x))


class ResNet18(nn.Module):
    def __init__(self, out_dim=6, width=64):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, cin = [], width
        for i in range(4):
            cout = width << i
            layers += [Block(cin, cout, 2 if i > 0 else 1), Block(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, out_dim)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        return self.fc(self.layers(x).mean((2, 3)))


class Siren(nn.Module):
    def __init__(self, i=3, h=256, layers=5, o=1, w0=30.0):
        super().__init__()
        self.w0 = w0
        self.layers = nn.ModuleList([nn.Linear(i if k == 0 else h, h) for k in range(layers)] + [nn.Linear(h, o)])

    def forward(self, x):
        for L in self.layers[:-1]:
            x = torch.sin(self.w0 * L(x))
        return self.layers[-1](x)


def best(fn, reps):
    """best wall time and best process CPU time (all threads) of reps runs"""
    fn()
    ts, cs = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
    return min(ts), min(cs)


def train_step(model, opt, x, y):
    def f():
        opt.zero_grad(set_to_none=False)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    return f


res = {"torch": torch.__version__, "threads": threads}
net = ResNet18()
opt = torch.optim.AdamW(net.parameters(), 1e-3)
x = torch.randn(batch, 1, size, size)
y = torch.randn(batch, 6)
res["resnet_step_s"], res["resnet_step_cpu_s"] = best(train_step(net, opt, x, y), reps)

sir = Siren()
opt = torch.optim.AdamW(sir.parameters(), 1e-4)
xs = torch.rand(points, 3) * 2 - 1
ys = torch.randn(points, 1)
res["siren_step_s"], res["siren_step_cpu_s"] = best(train_step(sir, opt, xs, ys), reps)

conv = {}
for (name, c, oc, k, s, p, hw) in json.loads(sys.stdin.read() or "[]"):
    m = nn.Conv2d(c, oc, k, s, p, bias=False)
    xi = torch.randn(batch // 2, c, hw, hw, requires_grad=True)

    def f():
        out = m(xi)
        out.backward(torch.ones_like(out))
    conv[name] = best(f, reps)[0]
res["conv"] = conv
print(json.dumps(res))
