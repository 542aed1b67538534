"""T and theta of ASAP's PAC schedule (Theorem 2) at t = 1, 100, 1,000, 10,000 alpha updates, with the
settings of params.yaml's search.asap block (docs/methods.md prints this table)."""
import math

from nasflow.study import method_settings
from nasflow.search.policies.asap import pac_schedule
from nasflow.settings import load_params

s = method_settings(load_params("params.yaml", "base", ["search.asap.schedule=pac"]), "asap")
pac, n = s["pac"], len(s["ops"])
print(f"N = {n}, a_lr = {s['a_lr']}, L = {pac['grad_bound']}, delta = {pac['delta']}, nu = {pac['nu']}")
print("t       T_t        theta_t")
for t in (1, 100, 1000, 10000):
    temperature, log_theta = pac_schedule(t, n, s["a_lr"], pac["grad_bound"], pac["delta"], pac["nu"])
    exponent = log_theta / math.log(10)
    mantissa = 10 ** (exponent - math.floor(exponent))
    print(f"{t:<7d} {temperature:.3g}  {mantissa:.2f}e{math.floor(exponent)}")
