"""Train the small two-moons models of many seeds at once: one stacked model per method and stage.

Why: a two-moons stage trains an MLP for 100 steps and a VAE + discriminator for 100 more; the models are
so small that each step's cost is per-call overhead (Python, autograd, the optimiser), not arithmetic.
An audit runs the same method for 10 seeds, whose labeled sets have the same size at every stage, so the
seeds' models can be trained together: weights stacked along a leading seed axis, ``torch.baddbmm``
instead of ``nn.Linear``, and one Adam over the stacked tensors (Adam is element-wise, so every seed's
slice follows exactly the update it would get alone). Ten seeds then cost about what one does.

What stays the engine's: every model is *built* by the engine's own constructors under the engine's
seeds, each seed's batches and noise come from that seed's own generators (the same draws as the engine
makes), and after training the weights are copied back into the seed's ``nn.Module`` s and handed to the
seed's :class:`~tavaal_core.engine.ActiveLearner` through its per-stage model cache, so scoring, picking
and the record are the engine's code. Results equal a sequential run up to floating-point rounding (the
batched products sum in another order), which a test checks.

Supported: MLP task learners without dropout (the engine's dropout masks come from torch's global
stream, which a batch of seeds cannot reproduce), with no head, the margin head or the ranking head, and
VAAL's / TA-VAAL's vector VAE + discriminator. Anything else (images, MC dropout, seed-004 VAEs,
warm starts) runs through the engine one seed at a time, in the same loop.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import rng, store, vaal_training
from .engine import PHASE_TASK, PHASE_VAE, ActiveLearner, TrainedTask
from .experiment import Experiment, ExperimentSpec, ProgressEvent, _one_line, replay
from .models.discriminator import Discriminator
from .models.loss_head import LossPredictionHead
from .models.task import MLP, build_task_model
from .models.vae import VectorVAE, build_vae
from .strategies import get_strategy
from .training import _batches


# -- which runs ----------------------------------------------------------------------------------------------
def supports(spec: ExperimentSpec) -> bool:
    """True when at least the task learners of ``spec`` can be trained together (MLP on vector data, no warm
    start); methods that cannot are run by the engine inside :func:`run`."""
    config = spec.config.resolve()
    return config.model == "mlp" and config.optimizer == "adam" and not config.warm_start and spec.trials > 1


def _method_batchable(learner: ActiveLearner, method: str) -> bool:
    needs = get_strategy(method).needs
    return (learner.config.model == "mlp" and learner.config.optimizer == "adam" and not learner.config.warm_start and not needs.mc_dropout
            and needs.vae in ("none", "adversarial", "rank_conditioned") and not needs.head_extra
            and needs.features == "task" and learner.dataset.kind == "vector")


# -- stacked parameters ------------------------------------------------------------------------------------------
def _stack(modules: list[nn.Module]) -> dict[str, torch.Tensor]:
    """name -> (S, ...) leaf tensor holding every module's parameter of that name."""
    names = [n for n, _ in modules[0].named_parameters()]
    per = [dict(m.named_parameters()) for m in modules]
    return {n: torch.stack([p[n].detach() for p in per]).clone().requires_grad_(True) for n in names}


def _unstack(stacked: dict[str, torch.Tensor], modules: list[nn.Module]) -> None:
    with torch.no_grad():
        for s, module in enumerate(modules):
            for name, param in module.named_parameters():
                param.copy_(stacked[name][s])


class StackedAdam:
    """Adam over stacked parameters: torch's fused Adam kernel (the one the engine's optimiser uses, ``adversarial
    ._adam``), called directly, so a step is two kernel calls whatever the number of tensors and none of
    ``torch.optim``'s per-call machinery (which also imports torch._dynamo on first use: seconds in a fresh
    process). Element-wise, so every seed's slice gets exactly its own Adam update."""

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = params
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.state_steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in params]

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        beta1, beta2 = self.betas
        torch._foreach_add_(self.state_steps, 1)
        # contiguous: the fused kernel reads a gradient's memory flat, and the gradient of a weight used
        # transposed in baddbmm is a strided view (its update would go to the wrong elements)
        torch._fused_adam_(self.params, [g.detach().contiguous() for g in grads], self.exp_avg, self.exp_avg_sq, [],
                           self.state_steps, amsgrad=False, lr=lr, beta1=beta1, beta2=beta2,
                           weight_decay=self.weight_decay, eps=self.eps, maximize=False)


def _linear(P, name: str, x: torch.Tensor) -> torch.Tensor:
    """(S, B, in) -> (S, B, out) with stacked ``name.weight`` (S, out, in) and ``name.bias`` (S, out)."""
    return torch.baddbmm(P[f"{name}.bias"].unsqueeze(1), x, P[f"{name}.weight"].transpose(1, 2))


def _sequential(P, prefix: str, module: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    for i, layer in enumerate(module):
        if isinstance(layer, nn.Linear):
            x = _linear(P, f"{prefix}.{i}", x)
        elif isinstance(layer, nn.ReLU):
            x = F.relu(x)
        else:  # pragma: no cover - a model changed shape: refuse rather than compute something else
            raise TypeError(f"batched training cannot run {type(layer).__name__} in {prefix}")
    return x


def _mlp_forward(P, x):
    """models.task.MLP.forward on stacked weights (no dropout): (logits, middle hidden layer)."""
    h1 = F.relu(_linear(P, "fc1", x))
    h2 = F.relu(_linear(P, "fc2", h1))
    return _linear(P, "classifier", h2), h2


def _per_seed_cross_entropy(logits, y):
    s, b, k = logits.shape
    return F.cross_entropy(logits.reshape(s * b, k), y.reshape(s * b), reduction="none").view(s, b)


def _pairs(predicted, true_loss):
    """loss_head._pairs along the batch axis of each seed."""
    half = predicted.shape[1] // 2
    true_loss = true_loss.detach()
    return predicted[:, :half], predicted.flip(1)[:, :half], true_loss[:, :half], true_loss.flip(1)[:, :half]


def _head_loss(kind: str, predicted, true_loss, margin: float):
    """Per-seed margin loss (Learning Loss) or ranking BCE (TA-VAAL eq. 1), (S,)."""
    p_i, p_j, l_i, l_j = _pairs(predicted, true_loss)
    if p_i.shape[1] == 0:
        return predicted.sum(1) * 0.0
    if kind == "margin":
        sign = torch.where(l_i > l_j, 1.0, -1.0).to(predicted.dtype)
        return torch.clamp(-sign * (p_i - p_j) + margin, min=0).mean(1)
    target = (l_i > l_j).to(predicted.dtype)
    return F.binary_cross_entropy_with_logits(p_i - p_j, target, reduction="none").mean(1)


# -- task learners ------------------------------------------------------------------------------------------------
def train_task_models(learners: list[ActiveLearner], head_kind, method=None, indices: list | None = None,
                      stage: int | None = None, epochs: int | None = None) -> list[TrainedTask] | None:
    """The task learner (+ head) of each learner's current stage (or of ``stage`` on ``indices``: the oracle
    is stage -1 on every label), trained together; None when the built models are not the batchable kind
    (then the engine trains them).

    ``head_kind`` and ``method`` (which decides the dropout rate) are one value for all or one per learner:
    models of different methods train in one stack. Every model gets a head slot; a model without a head
    has zeros there and a head weight of 0, so its backbone and its (unused) head get exactly no gradient
    from it, and Adam leaves a parameter with zero gradients where it is."""
    n_models = len(learners)
    kinds = [head_kind] * n_models if isinstance(head_kind, str) else list(head_kind)
    methods = [method] * n_models if method is None or isinstance(method, str) else list(method)
    first = learners[0]
    cfg, ds, device = first.config, first.dataset, first.device
    stage = first.stage if stage is None else stage
    epochs = cfg.epochs_at(stage) if epochs is None else epochs
    models, heads, xs, ys, gens = [], [], [], [], []
    for i, learner in enumerate(learners):
        c = learner.config
        with rng.seeded(c.seed, stage, "task-model", device):
            model = build_task_model(c.model, ds.input_shape, ds.num_classes, c.dropout_for(methods[i] or c.method))
        if not isinstance(model, MLP) or model.dropout.p != 0:  # MC dropout: the engine's masks
            return None
        head = None
        if kinds[i] != "none":
            with rng.seeded(c.seed, stage, "loss-head", device):
                head = LossPredictionHead(model.tap_dims, hidden=None, extra_dim=0)
            head = head.to(device)
        models.append(model.to(device))
        heads.append(head)
        idx = learner._t(learner.pool.labeled if indices is None else indices[i])
        xs.append(ds.normalize(ds.x_train[idx]))
        ys.append(ds.y_train[idx])
        gens.append(rng.torch_generator(c.seed, stage, "task-batches", device))
    P = _stack(models)
    with_head = [h for h in heads if h is not None]
    H = {}
    if with_head:
        template = with_head[0]
        filled = [h if h is not None else _zeros_like_module(template) for h in heads]
        H = _stack(filled)
        head_weight = torch.tensor([cfg.head_weight if k != "none" else 0.0 for k in kinds], device=device)
        is_margin = torch.tensor([k == "margin" for k in kinds], device=device)
    x, y = torch.stack(xs), torch.stack(ys)
    params = list(P.values()) + list(H.values())
    opt = StackedAdam(params, cfg.lr, cfg.weight_decay)
    milestone = max(1, round(cfg.lr_milestone * epochs))  # MultiStepLR: lr x0.1 from this epoch on
    stop_epoch = cfg.head_stop_fraction * epochs
    n = x.shape[1]
    history = []
    for epoch in range(epochs):
        perms = [_batches(n, cfg.batch_size, g, device) for g in gens]  # each seed's own shuffles
        task_sum = torch.zeros(n_models, device=device)
        lr = cfg.lr * (0.1 if epoch >= milestone else 1.0)
        for j in range(len(perms[0])):
            idx = torch.stack([p[j] for p in perms])  # (S, b)
            xb = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))
            yb = torch.gather(y, 1, idx)
            logits, h2 = _mlp_forward(P, xb)
            per_sample = _per_seed_cross_entropy(logits, yb)
            loss = per_sample.mean(1)
            if H:
                tap = h2 if epoch < stop_epoch else h2.detach()
                predicted = _linear(H, "out", tap).squeeze(-1)
                pair_loss = torch.where(is_margin, _head_loss("margin", predicted, per_sample, cfg.margin),
                                        _head_loss("ranking", predicted, per_sample, cfg.margin))
                loss = loss + head_weight * pair_loss
            # models' parameters are disjoint: the sum's gradient is each model's own
            opt.step(torch.autograd.grad(loss.sum(), params), lr)
            task_sum = task_sum + per_sample.mean(1).detach()
        history.append(task_sum / len(perms[0]))
    _unstack(P, models)
    if H:
        kept = [i for i, h in enumerate(heads) if h is not None]
        _unstack({k: v[kept] for k, v in H.items()}, [heads[i] for i in kept])
    losses = torch.stack(history).cpu().numpy() if history else np.zeros((0, n_models))
    out = []
    for s, (model, head) in enumerate(zip(models, heads)):
        model.eval()
        if head is not None:
            head.eval()
        out.append(TrainedTask(model, head, kinds[s], [float(v) for v in losses[:, s]]))
    return out


def _zeros_like_module(module: nn.Module) -> nn.Module:
    import copy

    clone = copy.deepcopy(module)
    with torch.no_grad():
        for p in clone.parameters():
            p.zero_()
    return clone


# -- VAE + discriminator ---------------------------------------------------------------------------------------------
def _vae_forward(P, vae: VectorVAE, x, r_dec, noise):
    h = _sequential(P, "encoder", vae.encoder, x)
    mu, logvar = _linear(P, "fc_mu", h), _linear(P, "fc_logvar", h)
    z = mu + noise * torch.exp(0.5 * logvar)
    if r_dec is not None:
        z = torch.cat([z, r_dec], dim=2)
    return _sequential(P, "decoder", vae.decoder, z), mu, logvar


def _encode(P, vae: VectorVAE, x):
    h = _sequential(P, "encoder", vae.encoder, x)
    return _linear(P, "fc_mu", h)


def _disc_forward(D, disc: Discriminator, mu, r):
    h = mu if r is None else torch.cat([mu, r], dim=2)
    return _sequential(D, "net", disc.net, h).squeeze(-1)


def _vae_terms(x, recon, mu, logvar, beta, kl_reduction):
    """vaal_training.reconstruction_kl_loss per seed, (S,)."""
    mse = (recon - x).pow(2).mean(dim=(1, 2))
    terms = 1.0 + logvar - mu.pow(2) - logvar.exp()
    kl = -0.5 * (terms.mean(dim=(1, 2)) if kl_reduction == "mean" else terms.sum(dim=(1, 2)))
    return mse + beta * kl


def _bce(logits, target: float):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target), reduction="none").mean(1)


def _pad_rank_input(P: dict, name: str, rank_dim: int) -> None:
    """Append ``rank_dim`` zero input columns to the stacked layer ``name`` (VAAL's decoder / discriminator
    input layer, so it has TA-VAAL's shape). Fed r = 0, the zero columns add nothing to the output and get
    exactly zero gradient, so the model computes and learns exactly what the unpadded one does."""
    w = P[f"{name}.weight"]
    P[f"{name}.weight"] = torch.cat([w.detach(), w.new_zeros(*w.shape[:-1], rank_dim)], dim=-1).requires_grad_(True)


def train_vaal_models(learners: list[ActiveLearner], trained: list[TrainedTask], needs) -> list | None:
    """:func:`tavaal_core.vaal_training.train_vaal` for every learner's current stage at once (vector data):
    the same models, batches, noise and losses per seed. ``needs``: one strategy ``Needs`` for all, or one
    per learner (VAAL and TA-VAAL models train in one stack, VAAL's padded to TA-VAAL's input width).
    Returns (models, seconds per model), or None when the models are not the batchable kind."""
    n_models = len(learners)
    needs_list = [needs] * n_models if not isinstance(needs, (list, tuple)) else list(needs)
    first = learners[0]
    ds, device, stage = first.dataset, first.device, first.stage
    settings_list = [lr._vaal_settings(nd) for lr, nd in zip(learners, needs_list)]
    ranked = [st.rank_conditioned for st in settings_list]
    rank_dim = 1 if any(ranked) else 0
    settings = settings_list[ranked.index(True)] if rank_dim else settings_list[0]
    vaes, discs, x_alls, r_dec_alls, r_disc_alls, gens, noise_gens = [], [], [], [], [], [], []
    n_l = n_u = None
    for learner, task, st_i in zip(learners, trained, settings_list):
        c = learner.config
        own_rank = 1 if st_i.rank_conditioned else 0
        labeled = learner.pool.labeled
        candidates = learner.pool.candidates(c.budget, c.subset_factor, c.seed, stage, fraction=c.subset_fraction)
        with rng.seeded(c.seed, stage, "vae", device):
            vae = build_vae("adversarial", ds.input_shape, st_i.latent_dim, st_i.vae_width, own_rank, st_i.vae_preset)
            disc = Discriminator(st_i.latent_dim, own_rank, st_i.discriminator_hidden, st_i.discriminator_layers)
        if not isinstance(vae, VectorVAE):
            return None
        vaes.append(vae.to(device).train())
        discs.append(disc.to(device).train())
        n_l, n_u = len(labeled), len(candidates)
        x_alls.append(ds.normalize(torch.cat([learner.inputs(labeled), learner.inputs(candidates)])))
        if own_rank:  # the learner's own per-stage predictions: its stage reuses them for its scores
            r_l = torch.as_tensor(learner.pool_predictions(task, "labeled", labeled).predicted_loss, device=device)
            r_u = torch.as_tensor(learner.pool_predictions(task, "candidates", candidates).predicted_loss,
                                  device=device)
            mode = st_i.discriminator_rank_input
            rl = vaal_training.rank_inputs(r_l, n_l, mode, device=device)
            ru = vaal_training.rank_inputs(r_u, n_u, mode, device=device)
            r_dec_alls.append(torch.cat([rl[0], ru[0]]))
            r_disc_alls.append(torch.cat([rl[1], ru[1]]))
        elif rank_dim:  # VAAL in a mixed stack: r = 0 into its zero columns
            r_dec_alls.append(torch.zeros(n_l + n_u, 1, device=device))
            r_disc_alls.append(torch.zeros(n_l + n_u, 1, device=device))
        gens.append(rng.torch_generator(c.seed, stage, "vae-batches", device))
        noise_gens.append(rng.torch_generator(c.seed, stage, "vae-noise", device))
    started = time.perf_counter()
    template_vae = next(v for v, r in zip(vaes, ranked) if r == bool(rank_dim))
    template_disc = next(d for d, r in zip(discs, ranked) if r == bool(rank_dim))
    groups = {}
    for flag in (True, False):
        members = [i for i, r in enumerate(ranked) if r == flag]
        if members:
            groups[flag] = members
    stacks = []
    for flag, members in groups.items():
        Pg, Dg = _stack([vaes[i] for i in members]), _stack([discs[i] for i in members])
        if rank_dim and not flag:
            _pad_rank_input(Pg, "decoder.0", rank_dim)
            _pad_rank_input(Dg, "net.0", rank_dim)
        stacks.append((members, Pg, Dg))
    order = [i for members, _, _ in stacks for i in members]
    P = {k: torch.cat([Pg[k] for _, Pg, _ in stacks]).detach().requires_grad_(True) for k in stacks[0][1]}
    D = {k: torch.cat([Dg[k] for _, _, Dg in stacks]).detach().requires_grad_(True) for k in stacks[0][2]}
    # rows of P / D follow `order`; put every per-model input in that order too
    x_all = torch.stack([x_alls[i] for i in order])  # (S, n_l + n_u, dim)
    r_dec_all = torch.stack([r_dec_alls[i] for i in order]) if rank_dim else None
    r_disc_all = torch.stack([r_disc_alls[i] for i in order]) if rank_dim else None
    gens_o, noise_o = [gens[i] for i in order], [noise_gens[i] for i in order]
    uniform = torch.tensor([ranked[i] for i in order], device=device)[:, None, None]
    vae_params, d_params = list(P.values()), list(D.values())
    opt_vae = StackedAdam(vae_params, settings.lr_vae)
    opt_d = StackedAdam(d_params, settings.lr_discriminator)
    b = min(settings.batch_size, n_u)
    b_l = min(b, n_l)
    steps = -(-(n_l + n_u) // settings.batch_size)  # the reference's (labeled + subset) / batch, as train_vaal
    beta, lam, klr = settings.beta, settings.adversary_weight, settings.kl_reduction
    latent = settings.latent_dim
    per_epoch = []
    step_count = 0
    for epoch in range(settings.epochs):
        idx = torch.stack([torch.cat([
            vaal_training._index_stream(n_l, steps * b_l, g, device).view(steps, b_l),
            vaal_training._index_stream(n_u, steps * b, g, device).view(steps, b) + n_l], dim=1) for g in gens_o])
        acc = torch.zeros(3, n_models, device=device)
        for s in range(steps):
            ib = idx[:, s]  # (S, b_l + b)
            xb = torch.gather(x_all, 1, ib.unsqueeze(-1).expand(-1, -1, x_all.shape[2]))
            r_dec = r_disc = None
            if rank_dim:
                r_dec = torch.gather(r_dec_all, 1, ib.unsqueeze(-1))
                r_disc = torch.gather(r_disc_all, 1, ib.unsqueeze(-1))
                if step_count < settings.uniform_rank_steps:  # Algorithm 1: r ~ U(0, 1) at first (TA-VAAL only)
                    drawn = torch.stack([torch.rand(b_l + b, 1, generator=g, device=device) if ranked[i]
                                         else torch.zeros(b_l + b, 1, device=device)
                                         for i, g in zip(order, gens_o)])
                    r_dec = torch.where(uniform, drawn, r_dec)
                    r_disc = torch.where(uniform, drawn, r_disc)
            # the engine's reparameterisation noise: randn_like(mu) from each model's "vae-noise" stream
            noise = torch.stack([torch.randn(b_l + b, latent, generator=g, device=device) for g in noise_o])
            recon, mu, logvar = _vae_forward(P, template_vae, xb, r_dec, noise)
            logits = _disc_forward(D, template_disc, mu, r_disc)
            l_vae = (_vae_terms(xb[:, :b_l], recon[:, :b_l], mu[:, :b_l], logvar[:, :b_l], beta, klr)
                     + _vae_terms(xb[:, b_l:], recon[:, b_l:], mu[:, b_l:], logvar[:, b_l:], beta, klr))
            l_adv = _bce(logits[:, :b_l], 1.0) + _bce(logits[:, b_l:], 1.0)
            opt_vae.step(torch.autograd.grad((l_vae + lam * l_adv).sum(), vae_params))  # D's weights: no gradient
            with torch.no_grad():
                mu_d = _encode(P, template_vae, xb)
            logits_d = _disc_forward(D, template_disc, mu_d, r_disc)
            l_d = _bce(logits_d[:, :b_l], 1.0) + _bce(logits_d[:, b_l:], 0.0)
            opt_d.step(torch.autograd.grad(l_d.sum(), d_params))
            acc += torch.stack([l_vae.detach(), l_adv.detach(), l_d.detach()])
            step_count += 1
        per_epoch.append(acc / steps)
    # back into each model, in `order`, dropping VAAL's padding
    offset = 0
    for members, Pg, Dg in stacks:
        rows = slice(offset, offset + len(members))
        Pm = {k: v[rows] for k, v in P.items()}
        Dm = {k: v[rows] for k, v in D.items()}
        if rank_dim and not ranked[members[0]]:
            Pm["decoder.0.weight"] = Pm["decoder.0.weight"][..., :-rank_dim]
            Dm["net.0.weight"] = Dm["net.0.weight"][..., :-rank_dim]
        _unstack(Pm, [vaes[i] for i in members])
        _unstack(Dm, [discs[i] for i in members])
        offset += len(members)
    seconds = (time.perf_counter() - started) / n_models
    hist = torch.stack(per_epoch).cpu().numpy() if per_epoch else np.zeros((0, 3, n_models))
    row_of = {i: r for r, i in enumerate(order)}
    out = []
    for i, learner in enumerate(learners):
        r = row_of[i]
        history = {k: hist[:, j, r].tolist() for j, k in enumerate(("vae", "adversarial", "discriminator"))}
        out.append(vaal_training.VAALModels(vaes[i].eval(), discs[i].eval(), settings_list[i], history,
                                          seed=learner.config.seed, stage=stage))
    return out, seconds


def oracle(learner: ActiveLearner):
    """``learner.oracle()`` (the task learner on every label, for the boundary the views draw dashed), trained
    here when the model allows: the same model and batches, without torch.optim (see StackedAdam)."""
    from .engine import OracleResult
    from .training import evaluate

    if learner._oracle is None and _method_batchable(learner, learner.config.method):
        cfg = learner.config
        everything = np.arange(len(learner._y_train))
        trained = train_task_models([learner], "none", cfg.method, indices=[everything], stage=-1,
                                    epochs=cfg.epochs_at(cfg.stages - 1))
        if trained is not None:
            preds = learner._predict(trained[0], learner.dataset.x_test)
            acc, _ = evaluate(preds.probs, learner._y_test, learner.dataset.num_classes)
            learner._oracle = OracleResult(acc, *learner._boundary(trained[0]))
    return learner.oracle()


# -- one stage of many seeds and methods ------------------------------------------------------------------------------
def step_together(learners: list[ActiveLearner], method=None) -> list:
    """``learner.step()`` for every learner (all at the same stage; any mix of methods, each running its own
    ``config.method`` unless ``method`` says otherwise), their models trained together where the methods
    allow. Returns the records, in the learners' order."""
    methods = [method or lr.config.method for lr in learners]
    batchable = [i for i, (lr, m) in enumerate(zip(learners, methods)) if _method_batchable(lr, m)]
    task_seconds = vae_seconds = None
    if len(batchable) > 1:
        group = [learners[i] for i in batchable]
        needs = [get_strategy(methods[i]).needs for i in batchable]
        t = time.perf_counter()
        trained = train_task_models(group, [n.head for n in needs], [methods[i] for i in batchable])
        if trained is not None:
            task_seconds = (time.perf_counter() - t) / len(group)
            for i, learner, task, nd in zip(batchable, group, trained, needs):
                learner._cache[("task", nd.head, False, learner.config.dropout_for(methods[i]))] = task
            with_vae = [k for k, nd in enumerate(needs) if nd.vae in ("adversarial", "rank_conditioned")]
            if with_vae:
                t = time.perf_counter()
                result = train_vaal_models([group[k] for k in with_vae], [trained[k] for k in with_vae],
                                           [needs[k] for k in with_vae])
                if result is not None:
                    vae_seconds = (time.perf_counter() - t) / len(with_vae)
                    for k, m in zip(with_vae, result[0]):
                        group[k]._cache[("vaal", needs[k].vae, needs[k].head)] = m
    records = []
    for i, (learner, m) in enumerate(zip(learners, methods)):
        record = learner.step() if m == learner.config.method else learner.what_if([m])[m]
        if task_seconds is not None and i in batchable:  # the stage's share of the shared training
            record.timings[PHASE_TASK] = task_seconds
            if vae_seconds is not None and PHASE_VAE in record.timings:
                record.timings[PHASE_VAE] = vae_seconds
            record.timings["models trained together"] = float(len(batchable))
        records.append(record)
    return records


# -- an experiment, seeds together ---------------------------------------------------------------------------------
def run(experiment: Experiment, progress=None, records: dict | None = None) -> dict:
    """``experiment.run()`` with each method's seeds stepped together (:func:`step_together`): the same run
    folder, records, status and resume behaviour. ``records``: a dict to fill with ``(trial, method) ->``
    every stage record of the units this call ran (those on disk before included), so a caller that
    measures them next need not read back what it just wrote."""
    progress = progress or (lambda event: None)
    experiment.check_not_running()
    lock = store.lock_run(experiment.run_dir)
    try:
        return _run(experiment, progress, records)
    finally:
        lock.close()


def _run(experiment: Experiment, progress, kept: dict | None = None) -> dict:
    import os
    import socket
    from concurrent.futures import ThreadPoolExecutor

    spec, run_dir = experiment.spec, experiment.run_dir
    store.remove_temp_files(run_dir)
    done, total = experiment.counts()
    try:
        previous = store.read_status(run_dir)
    except store.StoreError:
        previous = {}
    started = time.perf_counter()
    base_seconds = float(previous.get("run_seconds") or 0.0)
    status = {"state": "running", "pid": os.getpid(), "host": socket.gethostname(),
              "created": previous.get("created") or store.now_iso(), "started": store.now_iso(),
              "sessions": int(previous.get("sessions") or 0) + 1, "done": done, "total": total,
              "run_seconds": base_seconds, "error": None, "current": {}, "last": previous.get("last")}
    # Files are written in order by one background thread: the fsyncs of 200 small records would otherwise
    # cost seconds of a run that computes for seconds. A killed run loses at most the records in flight,
    # which a resume recomputes (each record is still written atomically).
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-writer")
    pending = []

    def later(fn, *args, **kwargs):
        pending.append(writer.submit(fn, *args, **kwargs))

    def write(**changes):
        status.update(changes)
        status["run_seconds"] = base_seconds + time.perf_counter() - started
        later(store.write_status, run_dir, dict(status))

    def drain():
        while pending:
            pending.pop(0).result()  # re-raises a failed write here

    write()
    try:
        rows = store.metrics_rows_from_records(run_dir)
        progress(ProgressEvent("start", done=done, total=total))
        # Every (trial, method) of the run, brought to where its folder stands; then stage by stage, all of
        # them together (models of all seeds and methods at a stage train in one stack).
        learners: dict[tuple[int, str], ActiveLearner] = {}
        for trial in range(spec.trials):
            for method in spec.methods:
                if experiment.finished(trial, method) >= spec.stages:
                    progress(ProgressEvent("skip", trial, method, spec.stages, done, total))
                    continue
                learner = experiment._learner(trial, method)
                replay(learner, store.load_records(run_dir, method, trial, spec.stages),
                       f"{run_dir}/records/{method}/trial{trial}")
                learners[(trial, method)] = learner
                if kept is not None:
                    kept[(trial, method)] = learner.records  # the same list, filled as the stages run
        experiment._first_learner = None
        while learners:
            stage = min(lr.stage for lr in learners.values())
            group = {k: lr for k, lr in learners.items() if lr.stage == stage}
            first_trial, first_method = min(group)
            write(current={"trial": first_trial, "method": first_method, "stage": stage, "phase": "together",
                           "fraction": 0.0, "message": f"{len(group)} models"})
            progress(ProgressEvent("phase", first_trial, first_method, stage, done, total, "together", 0.0,
                                   f"stage {stage}: {len(group)} seeds x methods"))
            records = step_together(list(group.values()))
            for ((trial, method), learner), record in zip(group.items(), records):
                later(store.save_record, run_dir, trial, record, seed=spec.trial_seed(trial))
                rows.append(store.record_metrics_row(record, trial, spec.trial_seed(trial)))
                done += 1
                progress(ProgressEvent("stage", trial, method, stage, done, total, record=record))
                if learner.done:
                    del learners[(trial, method)]
            later(store.write_metrics, run_dir, list(rows))
            last_trial, last_method = max(group)
            write(done=done, current={}, last={"trial": last_trial, "method": last_method, "stage": stage,
                                               "accuracy": float(records[-1].accuracy),
                                               "labeled_count": int(records[-1].labeled_count)})
            while len(pending) > 64:  # keep the queue short: a slow disk holds the run back, not memory
                pending.pop(0).result()
        drain()
    except (KeyboardInterrupt, SystemExit):
        _finish(writer, pending)
        store.write_status(run_dir, dict(status, state="interrupted", pid=None, stopped=store.now_iso(),
                                         error="interrupted by the user or a signal"))
        raise
    except BaseException as e:
        _finish(writer, pending)
        store.write_status(run_dir, dict(status, state="failed", pid=None, stopped=store.now_iso(),
                                         error=_one_line(e)))
        raise
    write(state="finished", pid=None, finished=store.now_iso(), current={})
    drain()
    writer.shutdown()
    progress(ProgressEvent("finish", done=done, total=total))
    return dict(status)


def _finish(writer, pending) -> None:
    """Let queued writes finish (each is atomic) after a failure, ignoring their own errors."""
    for future in pending:
        try:
            future.result()
        except Exception:
            pass
    writer.shutdown()
