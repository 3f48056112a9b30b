"""L-BFGS: a quasi-Newton method for full-batch problems, with PyTorch's closure interface.

The lecture's detour into second-order methods: w' = w - α H⁻¹ ∂w uses the curvature H of the loss to
take much better steps, but H⁻¹ "requires very large batches O(training set) to be estimated well",
and "I have never seen them work better than SGD in practice" (at scale; both lecturers tried
L-BFGS, "very parallelizable", "not really successful for us compared with SGD"). On a small,
deterministic, full-batch problem (a logistic regression, fitting a curve) they shine.

L-BFGS (Nocedal 1980; Liu & Nocedal 1989) never forms H: it keeps the last `history_size` steps
s = Δw and gradient changes y = Δ∂w, and applies the inverse-Hessian approximation they define to the
gradient with the two-loop recursion, starting from the scale sᵀy / yᵀy. Each direction is then
followed with a fixed step lr, or with a line search satisfying the strong Wolfe conditions
(sufficient decrease and curvature; Nocedal & Wright, "Numerical Optimization", alg. 3.5-3.6, with
cubic interpolation). The algorithm, its defaults and stopping rules follow torch.optim.LBFGS (itself
after Schmidt's minFunc), so the iterates agree with PyTorch's:

    optimizer = optim.LBFGS(model.parameters(), line_search_fn="strong_wolfe")
    def closure():
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss
    optimizer.step(closure)          # up to max_iter iterations (and max_eval closure calls)
"""

import numpy as np

from minidl.autograd import enable_grad, no_grad
from minidl.backend import active_kernels
from minidl.backend.device import CPU
from minidl.ops._util import host_values
from minidl.optim.optimizer import Optimizer


def _cubic_minimizer(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimizer of the cubic through (x1, f1) and (x2, f2) with slopes g1, g2, clipped to bounds
    (default: the interval between x1 and x2); the interval's middle when the cubic has no minimum."""
    low, high = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    discriminant = d1 * d1 - g1 * g2
    if discriminant < 0:
        return (low + high) / 2
    d2 = np.sqrt(discriminant)
    if x1 <= x2:
        t = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        t = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(t, low), high)


def strong_wolfe(evaluate, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """A step t along d satisfying the strong Wolfe conditions, from f, g = the loss and gradient at t = 0.

        f(t) <= f + c1·t·gtd          (sufficient decrease, "Armijo")
        |∇f(t)·d| <= c2·|gtd|         (the slope has flattened enough)

    evaluate(t) -> (loss, gradient) at the point t·d away. First grow t until an interval must hold
    such a step (bracketing), then shrink that interval with cubic interpolation (zoom).
    Returns (loss, gradient, t, number of evaluations).
    """
    d_norm = np.abs(d).max()
    f_new, g_new = evaluate(t)
    evaluations = 1
    gtd_new = g_new @ d
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    iterations = 0
    # Bracketing: each bracket entry is [t, loss, gradient, slope].
    while iterations < max_ls:
        if f_new > f + c1 * t * gtd or (iterations > 1 and f_new >= f_prev):
            bracket = [[t_prev, f_prev, g_prev, gtd_prev], [t, f_new, g_new, gtd_new]]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket = [[t, f_new, g_new, gtd_new]]
            done = True
            break
        if gtd_new >= 0:  # the slope turned: a minimum lies between the two points
            bracket = [[t_prev, f_prev, g_prev, gtd_prev], [t, f_new, g_new, gtd_new]]
            break
        # Still going down steeply: extrapolate, between a little and ten times further.
        t_next = _cubic_minimizer(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new, gtd_new
        t = t_next
        f_new, g_new = evaluate(t)
        evaluations += 1
        gtd_new = g_new @ d
        iterations += 1
    if iterations == max_ls:  # out of evaluations: the best of the start and the last point
        bracket = [[0.0, f, g, gtd], [t, f_new, g_new, gtd_new]]

    # Zoom: keep a bracket [low, high] (low has the lower loss) around a Wolfe point, and shrink it.
    low, high = (0, 1) if bracket[0][1] <= bracket[-1][1] else (1, 0)
    stalled = False
    while not done and iterations < max_ls:
        if abs(bracket[1][0] - bracket[0][0]) * d_norm < tolerance_change:
            break  # the bracket is too small to matter
        (t0, f0, _, s0), (t1, f1, _, s1) = bracket
        t = _cubic_minimizer(t0, f0, s0, t1, f1, s1)
        # A trial too close to an end (twice running, or outside) is moved 10% of the bracket inside.
        lo, hi = min(t0, t1), max(t0, t1)
        margin = 0.1 * (hi - lo)
        if min(hi - t, t - lo) < margin:
            if stalled or t >= hi or t <= lo:
                t = hi - margin if abs(t - hi) < abs(t - lo) else lo + margin
                stalled = False
            else:
                stalled = True
        else:
            stalled = False
        f_new, g_new = evaluate(t)
        evaluations += 1
        gtd_new = g_new @ d
        iterations += 1
        if f_new > f + c1 * t * gtd or f_new >= bracket[low][1]:
            bracket[high] = [t, f_new, g_new, gtd_new]  # not low enough: the new high end
            low, high = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high][0] - bracket[low][0]) >= 0:
                bracket[high] = bracket[low]  # the minimum is on the other side of the new point
            bracket[low] = [t, f_new, g_new, gtd_new]
    t, f_new, g_new, _ = bracket[low]
    return f_new, g_new, t, evaluations


class LBFGS(Optimizer):
    """L-BFGS over all parameters as one flat vector (see the module docstring); one parameter group.

    lr: the step along each direction (the line search's first trial); max_iter: iterations per
    step(closure); max_eval: closure calls per step (default max_iter·5/4); tolerance_grad: stop when
    max|∂w| <= it; tolerance_change: stop when the step or the loss change is below it; history_size:
    how many (s, y) pairs to keep; line_search_fn: None (fixed steps) or "strong_wolfe".
    The closure must zero the gradients, compute the loss, call backward() and return the loss.
    """

    def __init__(self, params, lr=1.0, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):  # fmt: skip
        max_eval = max_iter * 5 // 4 if max_eval is None else max_eval
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                        tolerance_change=tolerance_change, history_size=history_size,
                        line_search_fn=line_search_fn)  # fmt: skip
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS: parameter groups are not supported (it optimizes one flat vector)")
        self._params = self.param_groups[0]["params"]

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        for key in ("max_iter", "max_eval", "history_size"):
            if not isinstance(group[key], (int, np.integer)) or group[key] < 1:
                raise ValueError(f"LBFGS: {key} must be a positive integer, got {group[key]!r}")
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: line_search_fn must be None or 'strong_wolfe', got {group['line_search_fn']!r}")

    # ------------------------------------------------------- the flat vector
    # The vector algebra (dot products, the two-loop recursion, the line search) is NumPy on the
    # host. Parameters on another device send their gradients down and take their steps up, once
    # per closure call: host round trips, counted as such, and small next to the closure itself.
    def _flat_grad(self):
        return np.concatenate(
            [np.zeros(p.array.size, p.dtype) if p.grad is None else host_values("LBFGS", p.grad).reshape(-1)
             for p in self._params]
        )  # fmt: skip

    def _add(self, t, direction):
        """w += t·direction, parameter by parameter."""
        offset = 0
        for p in self._params:
            step = t * direction[offset : offset + p.array.size].reshape(p.shape)
            if p.device is CPU:
                p.array += step
            else:
                k = active_kernels[p.device]
                k.setitem(p.array, Ellipsis, k.add(p.array, k.from_numpy(step)))
            p._bump_version()
            offset += p.array.size

    def _evaluate(self, closure):
        with enable_grad():
            loss = closure()
        return float(loss), self._flat_grad()

    def _evaluate_along(self, closure, direction):
        """evaluate(t) for the line search: the loss and gradient t·direction away, parameters restored."""
        start = [p.array.copy() if p.device is CPU else active_kernels[p.device].astype(p.array, p.dtype)
                 for p in self._params]  # fmt: skip

        def evaluate(t):
            self._add(t, direction)
            result = self._evaluate(closure)
            for p, values in zip(self._params, start):
                if p.device is CPU:
                    p.array[...] = values
                else:
                    active_kernels[p.device].setitem(p.array, Ellipsis, values)
                p._bump_version()
            return result

        return evaluate

    # ------------------------------------------------------------ the step
    def step(self, closure):
        """Run up to max_iter L-BFGS iterations; returns the loss at the starting point."""
        if closure is None:
            raise ValueError("LBFGS.step: a closure that recomputes the loss (and its gradients) is required")
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        # One state for the whole vector, kept with the first parameter (as PyTorch does).
        state = self.state.setdefault(self._params[0], {"func_evals": 0, "n_iter": 0})
        with no_grad():
            with enable_grad():
                first_loss = closure()
            loss, grad = float(first_loss), self._flat_grad()
            evaluations = 1
            state["func_evals"] += 1
            if np.abs(grad).max() <= tolerance_grad:
                return first_loss
            d, t = state.get("d"), state.get("t")
            previous_grad, previous_loss = state.get("prev_flat_grad"), state.get("prev_loss")
            iteration = 0
            while iteration < max_iter:
                iteration += 1
                state["n_iter"] += 1
                if state["n_iter"] == 1:  # steepest descent to start; no curvature known yet
                    d = -grad
                    state.update(old_dirs=[], old_stps=[], ro=[], H_diag=1.0)
                else:
                    self._remember(state, grad - previous_grad, d * t, group["history_size"])
                    d = self._two_loop(state, grad)
                previous_grad, previous_loss = grad.copy(), loss
                # The first step ever is at most 1/|g|₁ long (no curvature to scale it yet).
                t = min(1.0, 1.0 / np.abs(grad).sum()) * lr if state["n_iter"] == 1 else lr
                gtd = grad @ d  # the slope along d: must be negative for a descent direction
                if gtd > -tolerance_change:
                    break
                if group["line_search_fn"] == "strong_wolfe":
                    evaluate = self._evaluate_along(closure, d)
                    loss, grad, t, used = strong_wolfe(evaluate, t, d, loss, grad, gtd, max_ls=max_eval - evaluations)
                    self._add(t, d)
                else:
                    self._add(t, d)
                    used = 0
                    if iteration != max_iter:  # the last iteration's point is evaluated by the next step()
                        loss, grad = self._evaluate(closure)
                        used = 1
                evaluations += used
                state["func_evals"] += used
                if iteration == max_iter or evaluations >= max_eval:
                    break
                if np.abs(grad).max() <= tolerance_grad:
                    break  # (nearly) stationary
                if np.abs(d * t).max() <= tolerance_change or abs(loss - previous_loss) < tolerance_change:
                    break  # no more progress
            state.update(d=d, t=t, prev_flat_grad=previous_grad, prev_loss=previous_loss)
        return first_loss

    @staticmethod
    def _remember(state, y, s, history_size):
        """Keep the newest curvature pair (s, y) if it has positive curvature sᵀy; forget the oldest."""
        ys = y @ s
        if ys > 1e-10:
            if len(state["old_dirs"]) == history_size:
                for key in ("old_dirs", "old_stps", "ro"):
                    state[key].pop(0)
            state["old_dirs"].append(y)
            state["old_stps"].append(s)
            state["ro"].append(1.0 / ys)
            state["H_diag"] = ys / (y @ y)  # the initial inverse-Hessian scale, sᵀy / yᵀy

    @staticmethod
    def _two_loop(state, grad):
        """-H⁻¹ grad for the L-BFGS inverse-Hessian approximation: the two-loop recursion."""
        ys, ss, ro = state["old_dirs"], state["old_stps"], state["ro"]
        alphas = [0.0] * len(ys)
        q = -grad
        for i in range(len(ys) - 1, -1, -1):  # newest pair first
            alphas[i] = (ss[i] @ q) * ro[i]
            q = q - alphas[i] * ys[i]
        r = q * state["H_diag"]
        for i in range(len(ys)):  # oldest pair first
            beta = (ys[i] @ r) * ro[i]
            r = r + (alphas[i] - beta) * ss[i]
        return r
