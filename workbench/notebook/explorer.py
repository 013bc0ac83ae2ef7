"""An interactive steering explorer for JupyterLab, with a plain-function core.

:func:`steer_and_generate` does the work and returns a dict (tested without a browser):
the unsteered and steered greedy generations for one prompt, and two refusal readouts for
each, taken on the prompt's last token:

- ``refusal_projection``: the residual stream at the *output* of the steered block
  (``blocks.{layer}.hook_resid_post``) projected on the unit refusal direction r̂ (residual
  units; steering adds ``coefficient * (v . r̂)`` to it directly, plus what the block does);
- ``refusal_score``: ``log p_R - log(1 - p_R)`` of the next token, ``p_R`` the probability of
  the model family's refusal tokens (``refusal_score`` of :mod:`workbench.evaluation`), i.e.
  the whole model's downstream answer.

:class:`SteeringExplorer` wraps it in ipywidgets (behaviour, layer, coefficient, "remove
refusal component", token budget, prompt box, Generate button); where no widget can be
drawn (an HTML export) it shows :meth:`SteeringExplorer.snapshot_html`, a static copy of its
current setting and result. Steering uses
:func:`workbench.steering.add_vector`, so hooks are removed even when generation fails.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext

import torch
from jaxtyping import Float

from workbench.activations import collect_activations
from workbench.errors import WorkbenchError
from workbench.model.generation import generate
from workbench.model.logprobs import last_logprobs, refusal_score
from workbench.geometry import remove_projection, unit
from workbench.steering import add_vector

Tensor = torch.Tensor

__all__ = ["SteeringExplorer", "readout", "render_result_html", "steer_and_generate",
           "steering_vector"]

DEFAULT_PROMPT = "Give me three tips for staying focused while studying."


def _tensor(v) -> Tensor:
    """The ``[n_layers, d]`` tensor of a ``SteeringVector``, or ``v`` itself."""
    return getattr(v, "tensor", v)


def _direction(r) -> Tensor:
    """The selected ``[d]`` direction of a ``RefusalDirection``, or ``r`` itself."""
    return getattr(r, "direction", r)


def steering_vector(
    vectors: Mapping[str, Tensor],
    behaviour: str,
    layer: int,
    refusal_direction: Tensor | None = None,
    mitigate: bool = False,
) -> Float[Tensor, " d"]:
    """The float32 vector to add at ``layer``: row ``layer`` of a ``[n_layers, d]`` stack (or a
    ``[d]`` vector as is), minus its component along the refusal direction if ``mitigate``."""
    if behaviour not in vectors:
        raise WorkbenchError(f"no steering vector for behaviour {behaviour!r}; "
                             f"known: {', '.join(vectors) or 'none'}")
    v = _tensor(vectors[behaviour])
    v = v[layer] if v.ndim == 2 else v
    if mitigate:
        if refusal_direction is None:
            raise WorkbenchError("mitigate=True needs a refusal direction to remove")
        r = _direction(refusal_direction)
        v = remove_projection(v.double(), r.double().to(v.device))
    return v.float()


def readout(
    model,
    prompt_ids: list[int],
    layer: int,
    refusal_direction: Tensor,
    max_new_tokens: int,
) -> dict:
    """Greedy generation plus the two refusal readouts, under whatever steering is active."""
    r_hat = unit(refusal_direction.double().cpu())
    acts = collect_activations(model, [prompt_ids], hooks=("resid_post",), layers=[layer],
                               positions="last", progress=False)["resid_post"][0, 0, 0]
    score = refusal_score(last_logprobs(model, [prompt_ids]), model.refusal_token_ids)[0]
    text = generate(model, [prompt_ids], max_new_tokens=max_new_tokens, progress=False)[0]
    return {"response": text, "refusal_projection": float(acts.double() @ r_hat),
            "refusal_score": float(score)}


def _steering(model, vector: Tensor, layer: int, coefficient: float,
              positions: str) -> AbstractContextManager:
    if coefficient == 0:
        return nullcontext()
    return add_vector(model, vector, layers=layer, coefficient=coefficient, positions=positions)


def steer_and_generate(
    model,
    vectors: Mapping[str, Tensor],
    refusal_direction: Tensor,
    behaviour: str,
    layer: int,
    coefficient: float,
    prompt: str,
    max_new_tokens: int = 48,
    *,
    mitigate: bool = False,
    positions: str = "eoi",
    unsteered: dict | None = None,
) -> dict:
    """Generate for ``prompt`` without and with ``coefficient * vectors[behaviour][layer]``
    added at ``resid_pre`` of ``layer`` (``positions``: ``eoi`` = post-instruction tokens and
    every generated token), and read the refusal projection and score of both.

    ``unsteered``: a previous :func:`readout` of the same prompt, layer and token budget, to
    skip recomputing the baseline. Returns a flat dict (see the module docstring).
    """
    layer = model.check_layer(int(layer))
    refusal_direction = _direction(refusal_direction)
    model.check_vector(refusal_direction, "refusal direction")
    vector = steering_vector(vectors, behaviour, layer, refusal_direction, mitigate)
    model.check_vector(vector, f"steering vector {behaviour!r}")
    ids = model.tokenize_instructions([prompt])[0]
    base = unsteered or readout(model, ids, layer, refusal_direction, max_new_tokens)
    with _steering(model, vector, layer, float(coefficient), positions):
        steered = readout(model, ids, layer, refusal_direction, max_new_tokens)
    r_hat = unit(refusal_direction.double().cpu())
    v64 = vector.double().cpu()
    return {
        "prompt": prompt, "behaviour": behaviour, "layer": layer,
        "coefficient": float(coefficient), "mitigated": bool(mitigate), "positions": positions,
        "max_new_tokens": int(max_new_tokens),
        "vector_norm": float(v64.norm()),
        "cosine": float(unit(v64) @ r_hat),
        "read_at": f"blocks.{layer}.hook_resid_post, last prompt token",
        "unsteered": base["response"], "steered": steered["response"],
        "unsteered_projection": base["refusal_projection"],
        "steered_projection": steered["refusal_projection"],
        "unsteered_refusal_score": base["refusal_score"],
        "steered_refusal_score": steered["refusal_score"],
    }


# ---------------------------------------------------------------------------- rendering

_COLORS = {"unsteered": "#0072B2", "steered": "#D55E00"}


def _bars_svg(title: str, values: dict[str, float], width: int = 420) -> str:
    """A tiny zero-centred horizontal bar chart as inline SVG (no JavaScript needed)."""
    limit = max((abs(v) for v in values.values()), default=1.0) or 1.0
    half, row, label_w = (width - 120) / 2, 26, 90
    h = 24 + row * len(values)
    parts = [f'<svg width="{width}" height="{h}" style="font-family:Arial,sans-serif">',
             f'<text x="0" y="14" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    x0 = label_w + half
    for i, (name, v) in enumerate(values.items()):
        y = 22 + i * row
        w = abs(v) / limit * (half - 30)
        x = x0 if v >= 0 else x0 - w
        parts.append(f'<text x="0" y="{y + 15}" font-size="13">{html.escape(name)}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="16" '
                     f'fill="{_COLORS.get(name, "#555")}"/>')
        tx = x0 + w + 4 if v >= 0 else x0 - w - 4
        anchor = "start" if v >= 0 else "end"
        parts.append(f'<text x="{tx:.1f}" y="{y + 15}" font-size="12" '
                     f'text-anchor="{anchor}">{v:+.3g}</text>')
    parts.append(f'<line x1="{x0}" y1="20" x2="{x0}" y2="{h}" stroke="#333" stroke-width="1.5"/>')
    parts.append("</svg>")
    return "".join(parts)


def _text_box(title: str, text: str, color: str) -> str:
    body = html.escape(text) if text.strip() else "<i>(empty)</i>"
    return (f"<div style='flex:1;min-width:260px;border:2px solid {color};border-radius:6px;"
            f"padding:8px'><div style='font-weight:bold;color:{color};margin-bottom:4px'>"
            f"{html.escape(title)}</div><div style='white-space:pre-wrap;font-size:15px'>"
            f"{body}</div></div>")


def render_result_html(result: dict) -> str:
    """Side-by-side generations and the refusal readouts of a :func:`steer_and_generate` dict."""
    m = " (refusal component removed)" if result["mitigated"] else ""
    steered_title = (f"steered: {result['behaviour']}{m}, layer {result['layer']}, "
                     f"α = {result['coefficient']:+g}")
    boxes = (_text_box("unsteered", result["unsteered"], _COLORS["unsteered"])
             + _text_box(steered_title, result["steered"], _COLORS["steered"]))
    proj = _bars_svg("projection on refusal direction r̂",
                     {"unsteered": result["unsteered_projection"],
                      "steered": result["steered_projection"]})
    score = _bars_svg("refusal score (log-odds of refusal tokens)",
                      {"unsteered": result["unsteered_refusal_score"],
                       "steered": result["steered_refusal_score"]})
    note = (f"<div style='font-size:12px;color:#555'>projection read at {result['read_at']}; "
            f"cos(v, r̂) = {result['cosine']:+.3f}, |v| = {result['vector_norm']:.3g}</div>")
    return (f"<div style='display:flex;gap:12px;flex-wrap:wrap'>{boxes}</div>"
            f"<div style='display:flex;gap:24px;flex-wrap:wrap;margin-top:8px'>{proj}{score}</div>"
            f"{note}")


# ---------------------------------------------------------------------------- the widget


class SteeringExplorer:
    """ipywidgets front end of :func:`steer_and_generate`; display it as the cell's value.

    Args:
        model: a :class:`workbench.WorkbenchModel`.
        vectors: behaviour name -> steering vector, ``[n_layers, d]`` (row per layer, e.g. a
            CAA vector or a ``SteeringVector``) or ``[d]`` (used at whichever layer is chosen).
        refusal_direction: ``[d]``, the refusal direction (need not be unit norm), or the
            ``RefusalDirection`` of ``wb.refusal_direction`` (its selected direction).
        layer, coefficient, prompt, max_new_tokens: initial control values.
        coefficient_range: the coefficient slider's ``(min, max)``.
    """

    def __init__(
        self,
        model,
        vectors: Mapping[str, Tensor],
        refusal_direction: Tensor,
        *,
        layer: int | None = None,
        coefficient: float = 4.0,
        prompt: str = DEFAULT_PROMPT,
        max_new_tokens: int = 48,
        coefficient_range: tuple[float, float] = (-10.0, 10.0),
        positions: str = "eoi",
    ) -> None:
        import ipywidgets as w

        if not vectors:
            raise WorkbenchError("no steering vectors given; pass {behaviour: vector}")
        refusal_direction = _direction(refusal_direction)
        model.check_vector(refusal_direction, "refusal direction")
        self.model, self.vectors, self.refusal_direction = model, dict(vectors), refusal_direction
        self.positions = positions
        self.result: dict | None = None
        self._baselines: dict[tuple, dict] = {}
        style = {"description_width": "110px"}
        wide = w.Layout(width="440px")
        self.behaviour = w.Dropdown(options=list(self.vectors), description="behaviour",
                                    style=style, layout=wide)
        self.layer = w.IntSlider(value=model.n_layers // 2 if layer is None else layer,
                                 min=0, max=model.n_layers - 1, description="layer",
                                 style=style, layout=wide, continuous_update=False)
        lo, hi = coefficient_range
        self.coefficient = w.FloatSlider(value=coefficient, min=lo, max=hi, step=0.25,
                                         description="coefficient α", style=style, layout=wide,
                                         continuous_update=False, readout_format="+.2f")
        self.mitigate = w.Checkbox(value=False, description="remove refusal component from v",
                                   style=style, indent=False)
        self.max_new_tokens = w.IntSlider(value=max_new_tokens, min=1, max=256,
                                          description="new tokens", style=style, layout=wide,
                                          continuous_update=False)
        self.prompt = w.Textarea(value=prompt, description="prompt", style=style,
                                 layout=w.Layout(width="95%", height="70px"))
        self.button = w.Button(description="Generate", button_style="primary", icon="play")
        self.status = w.HTML()
        self.output = w.HTML()
        self.button.on_click(self.update)
        controls = w.HBox([w.VBox([self.behaviour, self.layer, self.coefficient]),
                           w.VBox([self.max_new_tokens, self.mitigate])])
        self.widget = w.VBox([controls, self.prompt, w.HBox([self.button, self.status]),
                              self.output])

    def update(self, _button=None) -> dict | None:
        """Run :func:`steer_and_generate` with the current controls and fill :attr:`output`."""
        self.button.disabled, self.status.value = True, "<i>generating…</i>"
        try:
            key = (self.prompt.value, int(self.layer.value), int(self.max_new_tokens.value))
            result = steer_and_generate(
                self.model, self.vectors, self.refusal_direction, self.behaviour.value,
                self.layer.value, self.coefficient.value, self.prompt.value,
                self.max_new_tokens.value, mitigate=self.mitigate.value,
                positions=self.positions, unsteered=self._baselines.get(key),
            )
        except WorkbenchError as exc:
            self.output.value = (f"<div style='color:#b00020;font-weight:bold'>"
                                 f"{html.escape(str(exc))}</div>")
            self.status.value = ""
            return None
        finally:
            self.button.disabled = False
        self._baselines[key] = {"response": result["unsteered"],
                                "refusal_projection": result["unsteered_projection"],
                                "refusal_score": result["unsteered_refusal_score"]}
        self.result = result
        self.output.value = render_result_html(result)
        self.status.value = ""
        return result

    def snapshot_html(self) -> str:
        """A static HTML copy of the explorer's current setting and last result (no script).

        Shown wherever the widget cannot be: an HTML export (``workbench handout``, ``jupyter
        nbconvert --to html``) or a front end without the widget manager.
        """
        r = self.result
        if r is None:
            setting = (f"behaviour {self.behaviour.value}, layer {self.layer.value}, "
                       f"α = {self.coefficient.value:+g}")
            body = "<i>no generation yet: run <code>explorer.update()</code></i>"
        else:
            setting = (f"behaviour {r['behaviour']}, layer {r['layer']}, "
                       f"α = {r['coefficient']:+g}"
                       + (", refusal component removed" if r["mitigated"] else ""))
            body = (f"<div style='margin:4px 0'><b>prompt:</b> {html.escape(r['prompt'])}</div>"
                    + render_result_html(r))
        return (f"<div class='workbench-explorer-snapshot'><div style='font-size:13px;"
                f"color:#555;margin-bottom:4px'><b>Steering explorer</b>, a static snapshot of "
                f"{html.escape(setting)} (open the notebook in Jupyter to move the controls)"
                f"</div>{body}</div>")

    def _repr_mimebundle_(self, **kwargs):
        # the widget where a widget manager runs; the snapshot where it cannot (HTML exports
        # skip a widget view whose state is not saved and fall back to text/html)
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/html"] = self.snapshot_html()
        return bundle
