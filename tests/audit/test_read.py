"""The reader on small derivation documents in the styles people write: the exact claim
text each entry becomes (written by hand from the LaTeX's meaning), and what is `not checked`."""

from __future__ import annotations

import textwrap

import pytest

from symderive.audit.read import read_document


def at(doc: str, fragment: str) -> int:
    """The file line (from 1) holding ``fragment``: where an entry must be placed."""
    return next(n for n, line in enumerate(doc.split("\n"), start=1) if fragment in line)


def relations(doc: str, **kwargs) -> list[tuple]:
    """(line, status, [(left, right), ...]) of each entry; a not-checked link is ("not checked", reason)."""
    out = []
    for entry in read_document(textwrap.dedent(doc), **kwargs):
        links = [(k.left, k.right) if k.status != "not checked" else ("not checked", k.reason) for k in entry.links]
        out.append((entry.line, entry.status, links))
    return out


CONV = """\
```toml symderive
layer = "conv2d"
[sizes]
k_h = "kh"
k_w = "kw"
```
"""


def conv(text: str) -> str:
    """A document under the conv2d notation above (whose block takes lines 1-6)."""
    return CONV + textwrap.dedent(text)


def test_bracket_indices_with_bounded_sums_and_a_derivative():
    doc = conv(r"""
    $$y[i, j] = \sum_{m=0}^{k_h - 1} \sum_{n=0}^{k_w - 1} x[i + m, j + n] \cdot w[m, n] + b$$

    $$\frac{\partial L}{\partial w[m, n]} = \sum_{i=0}^{H - k_h} \sum_{j=0}^{W - k_w} \frac{\partial L}{\partial y[i, j]} x[i + m, j + n]$$
    """)
    assert relations(doc) == [
        (
            at(doc, "$$y[i, j]"),
            "read",
            [("y[i, j]", "Sum(x[i + m, j + n] * w[m, n], (m, 0, kh - 1), (n, 0, kw - 1)) + b")],
        ),
        (
            at(doc, "partial w[m, n]"),
            "read",
            [("dw[m, n]", "Sum(g[i, j] * x[i + m, j + n], (i, 0, H - kh), (j, 0, W - kw))")],
        ),
    ]


def test_parenthesis_indices_primes_and_an_off_by_one_bound():
    doc = conv(r"""
    $$\frac{\partial L}{\partial x(i', j')} = \sum_{m=0}^{k_h} \sum_{n=0}^{k_w - 1} \frac{\partial L}{\partial y(i'-m, j'-n)} w(m, n)$$
    """)
    [(line, status, links)] = relations(doc)
    assert (line, status) == (at(doc, "partial x(i', j')"), "read")
    assert links == [("dx[i_prime, j_prime]", "Sum(g[i_prime - m, j_prime - n] * w[m, n], (m, 0, kh), (n, 0, kw - 1))")]


def test_subscript_and_run_together_indices_by_the_tensors_rank():
    doc = r"""
    ```toml symderive
    layer = "linear_batched"
    ```
    $$y_{nj} = \sum_i x_{ni} w_{ji} + b_j$$

    $$y_{n,j} = \sum_{i} x_{n, i} w_{j,i} + b_{j}$$

    $$x_{nij} = 0$$
    """
    got = relations(doc)
    assert got[0] == (at(doc, "y_{nj}"), "read", [("y[n, j]", "Sum(x[n, i] * w[j, i], i) + b[j]")])
    assert got[1] == (at(doc, "y_{n,j}"), "read", [("y[n, j]", "Sum(x[n, i] * w[j, i], i) + b[j]")])
    # three letters run together for a tensor of rank 2: not guessed
    assert got[2][1] == "not checked"
    assert "rank 2" in got[2][2][0][1]


def test_softmax_jacobian_with_exclusion_sum_kronecker_and_notation_symbol():
    doc = r"""
    ```toml symderive
    layer = "softmax_cross_entropy"
    [notation]
    p = "softmax(s)"
    ```
    $$\frac{\partial p_i}{\partial s_k} = p_i (\delta_{ik} - p_k)$$

    $$\sum_{k \neq i} p_k = 1 - p_i$$

    $$\frac{\partial L}{\partial s_k} = \sum_i t_i (p_k - \delta_{i,k})$$
    """
    assert relations(doc) == [
        (
            at(doc, "partial p_i"),
            "read",
            [("diff(softmax(s)[i], s[k])", "softmax(s)[i] * (KroneckerDelta(i, k) - softmax(s)[k])")],
        ),
        (at(doc, "k \\neq i"), "read", [("Sum(softmax(s)[k] * (1 - KroneckerDelta(k, i)), k)", "1 - softmax(s)[i]")]),
        (at(doc, "delta_{i,k}"), "read", [("ds[k]", "Sum(t[i] * (softmax(s)[k] - KroneckerDelta(i, k)), i)")]),
    ]


def test_einstein_summation_sums_repeated_indices_not_free_on_the_left():
    doc = r"""
    ```toml symderive
    layer = "linear"
    einstein = true
    ```
    $$y_j = w_{ji} x_i + b_j$$

    $$\frac{\partial L}{\partial x_i} = w_{ji} \frac{\partial L}{\partial y_j}$$
    """
    assert relations(doc) == [
        (at(doc, "y_j = w_{ji}"), "read", [("y[j]", "Sum(w[j, i] * x[i], i) + b[j]")]),
        (at(doc, "partial x_i} = w_{ji}"), "read", [("dx[i]", "Sum(w[j, i] * g[j], j)")]),
    ]


def test_cases_with_conditions_and_an_abstract_activation(tmp_path):
    (tmp_path / "act.toml").write_text(
        'name = "act"\nfunctions = ["f"]\n[inputs]\nx = ["n"]\n[output]\ny = "f(x)"\n', encoding="utf-8"
    )
    doc = tmp_path / "notes.md"
    doc.write_text(
        textwrap.dedent(r"""
        ```toml symderive
        layer = "act.toml"
        ```
        $$y_i = f(x_i)$$

        $$\frac{\partial L}{\partial x_i} = \begin{cases} \frac{\partial L}{\partial y_i} & \text{if } x_i > 0 \\ 0 & \text{otherwise} \end{cases}$$
        """),
        encoding="utf-8",
    )
    assert relations(str(doc)) == [
        (5, "read", [("y[i]", "f(x[i])")]),
        (7, "read", [("dx[i]", "(x[i] > 0) * g[i]")]),
    ]


def test_chains_and_continuation_entries():
    doc = r"""
    ```toml symderive
    layer = "softmax_cross_entropy"
    ```
    $$L = -\sum_i t_i \log\frac{e^{s_i}}{\sum_j e^{s_j}} = -\sum_i t_i s_i + \sum_i t_i \log \sum_j e^{s_j}$$

    $$= -\sum_i t_i s_i + \log \sum_j e^{s_j} \quad \text{(2)}$$
    """
    right1 = "-Sum(t[i] * log(exp(s[i]) / Sum(exp(s[j]), j)), i)"
    right2 = "-Sum(t[i] * s[i], i) + Sum(t[i] * log(Sum(exp(s[j]), j)), i)"
    assert relations(doc) == [
        (at(doc, "$$L ="), "read", [("L", right1), (right1, right2)]),
        (at(doc, "$$= -"), "read", [(right2, "-Sum(t[i] * s[i], i) + log(Sum(exp(s[j]), j))")]),
    ]


def test_align_rows_inside_display_math_continue_the_chain_and_the_expression():
    doc = r"""
    ```toml symderive
    layer = "linear"
    ```
    $$
    \begin{aligned}
    \frac{\partial L}{\partial x_i} &= \sum_j \frac{\partial L}{\partial y_j} \frac{\partial y_j}{\partial x_i} \\
      &= \sum_j \frac{\partial L}{\partial y_j} w_{ji} \\
    y_j &= \sum_i w_{ji} x_i \\
      &+ b_j
    \end{aligned}
    $$
    """
    assert relations(doc) == [
        (
            at(doc, "&= \\sum_j \\frac{\\partial L}{\\partial y_j} \\frac"),
            "read",
            [("dx[i]", "Sum(g[j] * diff(y[j], x[i]), j)")],
        ),
        (at(doc, "w_{ji} \\\\"), "read", [("Sum(g[j] * diff(y[j], x[i]), j)", "Sum(g[j] * w[j, i], j)")]),
        (at(doc, "y_j &="), "read", [("y[j]", "Sum(w[j, i] * x[i], i) + b[j]")]),
    ]


def test_several_notation_blocks_each_in_force_to_the_next():
    doc = conv(r"""
    $$\frac{\partial L}{\partial b} = \sum_{i, j} \frac{\partial L}{\partial y_{ij}}$$

    ```toml symderive
    layer = "linear"
    [names]
    W = "w"
    ```

    $$\frac{\partial L}{\partial x} = W^\top \frac{\partial L}{\partial y}$$

    $$\frac{\partial L}{\partial x} = W \frac{\partial L}{\partial y}$$
    """)
    assert relations(doc) == [
        (at(doc, "partial b}"), "read", [("db", "Sum(g[i, j], i, j)")]),
        (at(doc, "W^\\top"), "read", [("dx", "w.T @ g")]),
        (at(doc, "= W \\frac"), "read", [("dx", "w @ g")]),
    ]


def test_a_latex_file_with_environments_rows_and_a_notation_comment(tmp_path):
    tex = tmp_path / "fc.tex"
    tex.write_text(
        textwrap.dedent(r"""
        \documentclass{article}
        % symderive
        % layer = "linear"
        % end symderive
        \begin{document}
        The layer computes $y = Wx + b$, that is
        \begin{equation}
          y_j = \sum_i w_{ji} x_i + b_j \label{eq:fc}
        \end{equation}
        and its gradients are
        \begin{align*}
          \frac{\partial L}{\partial b} &= \frac{\partial L}{\partial y} \\
          \frac{\partial L}{\partial w_{ji}} &= \frac{\partial L}{\partial y_j} x_i % the outer product
        \end{align*}
        \[ \frac{\partial L}{\partial x} = w^T \frac{\partial L}{\partial y}. \]
        \end{document}
        """),
        encoding="utf-8",
    )
    assert relations(str(tex)) == [
        (9, "read", [("y[j]", "Sum(w[j, i] * x[i], i) + b[j]")]),
        (13, "read", [("db", "g")]),
        (14, "read", [("dw[j, i]", "g[j] * x[i]")]),
        (16, "read", [("dx", "w.T @ g")]),
    ]


def test_layer_norm_through_an_intermediate_and_a_defined_symbol():
    doc = r"""
    ```toml symderive
    layer = "layer_norm"
    [intermediates]
    mu = "mean(x, axis=1)"
    [names]
    '\epsilon' = "eps"
    ```
    $$\mu_n = \frac{1}{D} \sum_{d=0}^{D-1} x_{nd}$$

    $$\sigma_n = \sqrt{\frac{1}{D} \sum_d (x_{nd} - \mu_n)^2 + \epsilon}$$

    $$y_{nd} = \gamma_d \frac{x_{nd} - \mu_n}{\sigma_n} + \beta_d$$

    $$\frac{\partial \mu_n}{\partial x_{nk}} = \frac{1}{D}$$
    """
    sigma = "sqrt(1 / D * Sum((x[n, d] - mu[n]) ** 2, d) + eps)"
    got = relations(doc)
    assert got[0] == (at(doc, "$$\\mu_n"), "read", [("mu[n]", "1 / D * Sum(x[n, d], (d, 0, D - 1))")])
    # \sigma is new: a definition of the symbol read at n, expanded where it is used
    assert got[1] == (at(doc, "$$\\sigma_n"), "definition", [("\\sigma_{n}", sigma)])
    y = f"gamma[d] * ((x[n, d] - mu[n]) / {sigma}) + beta[d]"
    assert got[2] == (at(doc, "$$y_{nd}"), "read", [("y[n, d]", y)])
    assert got[3] == (at(doc, "partial \\mu_n"), "read", [("diff(mu[n], x[n, k])", "1 / D")])


def test_plain_symbol_definition_is_expanded_in_later_entries():
    doc = r"""
    ```toml symderive
    layer = "softmax_cross_entropy"
    ```
    $$Z = \sum_j e^{s_j}$$

    $$L = -\sum_i t_i (s_i - \log Z)$$
    """
    assert relations(doc) == [
        (at(doc, "$$Z"), "definition", [("Z", "Sum(exp(s[j]), j)")]),
        (at(doc, "$$L"), "read", [("L", "-Sum(t[i] * (s[i] - log(Sum(exp(s[j]), j))), i)")]),
    ]


def test_document_defined_operator_generalises_over_its_operands():
    doc = conv(r"""
    $$(A \star B)(i, j) = \sum_{m=0}^{k_h-1} \sum_{n=0}^{k_w-1} A(m, n) B(i + m, j + n)$$
    """)
    # A, B are not names of conv2d: the definition must name the layer's tensors
    assert relations(doc)[0][1] == "not checked"
    doc = conv(r"""
    $$(w \star x)(i, j) = \sum_{m=0}^{k_h-1} \sum_{n=0}^{k_w-1} w(m, n) x(i + m, j + n)$$

    $$y(i, j) = (w \star x)(i, j) + b$$

    $$\frac{\partial L}{\partial w(p, q)} = \left(\frac{\partial L}{\partial y} \star x\right)(p, q)$$
    """)
    body = "Sum(w[m, n] * x[i + m, j + n], (m, 0, kh - 1), (n, 0, kw - 1))"
    got = relations(doc)
    assert got[0] == (at(doc, "$$(w"), "definition", [("(w\\star x)(i,j)", body)])
    assert got[1] == (at(doc, "$$y(i, j)"), "read", [("y[i, j]", body + " + b")])
    # g's shape is not known to the reader: the bound becomes "where g's reads are in range"
    assert got[2] == (at(doc, "partial w(p, q)"), "read", [("dw[p, q]", "Sum(g[m, n] * x[p + m, q + n], m, n)")])


def test_derivative_spellings():
    doc = r"""
    ```toml symderive
    layer = "linear"
    ```
    $$\partial L / \partial x_i = \sum_j w_{ji} \frac{dL}{dy_j}$$

    $$\frac{\partial}{\partial x_i} \left( \sum_k w_{jk} x_k \right) = w_{ji}$$

    $$\frac{\partial y}{\partial x} = w$$
    """
    assert relations(doc) == [
        (at(doc, "$$\\partial L"), "read", [("dx[i]", "Sum(w[j, i] * g[j], j)")]),
        (at(doc, "left("), "read", [("diff(Sum(w[j, k] * x[k], k), x[i])", "w[j, i]")]),
        (at(doc, "partial y}{"), "read", [("diff(y, x)", "w")]),
    ]


def test_transparent_decorations_labels_and_remarks():
    doc = r"""
    ```toml symderive
    layer = "linear"
    ```
    $$(4) \quad \boxed{y_j = \underbrace{\sum_i w_{ji} x_i}_{\text{matvec}} + b_j} \quad \text{Eq. 4}.$$

    $$\textcircled{2} \; y_j = \sum_i w_{ji} x_i + b_j \rightarrow \text{the forward pass}$$

    $$y_j = \sum_i w_{ji} x_i + b_j \tag{5}$$
    """
    expected = [("y[j]", "Sum(w[j, i] * x[i], i) + b[j]")]
    assert relations(doc) == [
        (at(doc, "(4)"), "read", expected),
        (at(doc, "textcircled"), "read", expected),
        (at(doc, "tag"), "read", expected),
    ]


def test_what_is_not_read_is_not_checked_with_the_reason():
    doc = r"""
    ```toml symderive
    layer = "linear"
    ```
    $$y = w \otimes x$$

    $$y_j = \sum_i w_{ji} x_i + \dots$$

    $$y_j \approx \sum_i w_{ji} x_i$$

    $$y_j = \mathrm{foo}(x_j)$$

    $$y_j = \max_i w_{ji} x_i$$

    $$y_j = q_j$$

    $$\frac{\partial L}{\partial x}$$
    """
    entries = read_document(textwrap.dedent(doc))
    reasons = [entry.reason for entry in entries[:-1]]
    assert [e.status for e in entries] == ["not checked"] * 6 + ["not an equation"]
    assert reasons[0].startswith("\\otimes is not defined: define it in the document or under [notation]")
    assert "schematic" in reasons[1]
    assert "only equalities" in reasons[2]
    assert "foo" in reasons[3]
    assert "\\max" in reasons[4]
    assert "q is not a name of layer linear" in reasons[5]


def test_side_by_side_relations_are_several_entries():
    doc = r"""
    ```toml symderive
    layer = "linear"
    ```
    $$y = w x + b, \quad \frac{\partial L}{\partial b} = \frac{\partial L}{\partial y} \quad \text{and} \quad \frac{\partial L}{\partial x} = w^T \frac{\partial L}{\partial y}$$
    """
    assert relations(doc) == [
        (at(doc, "$$y"), "read", [("y", "w @ x + b")]),
        (at(doc, "$$y"), "read", [("db", "g")]),
        (at(doc, "$$y"), "read", [("dx", "w.T @ g")]),
    ]


def test_free_indices_and_their_ranges_from_the_left_side():
    doc = conv(r"""
    $$\frac{\partial y[e, f]}{\partial x[a, b]} = w[a - e, b - f]$$
    """)
    [entry] = read_document(doc)
    [link] = entry.links
    assert link.free_indices == ("e", "f", "a", "b")
    assert link.index_ranges == (("e", "y", 0), ("f", "y", 1), ("a", "x", 0), ("b", "x", 1))


def test_rewrite_fixes_transcription_slips_before_reading():
    doc = r"""
    ```toml symderive
    layer = "linear"
    [rewrite]
    '\partial xi' = '\partial x_i'
    ```
    $$\frac{\partial L}{\partial xi} = \sum_j w_{ji} \frac{\partial L}{\partial y_j}$$
    """
    assert relations(doc) == [(at(doc, "partial xi}"), "read", [("dx[i]", "Sum(w[j, i] * g[j], j)")])]


@pytest.mark.parametrize("style", ["markdown-math-fence", "bracket-display", "bare-align"])
def test_markdown_display_forms(style):
    body = {
        "markdown-math-fence": "```math\ny_j = b_j\n```",
        "bracket-display": "\\[\n y_j = b_j\n\\]",
        "bare-align": "\\begin{align}\ny_j &= b_j\n\\end{align}",
    }[style]
    doc = "```toml symderive\nlayer = 'linear'\n```\nSome prose with inline $$y = 0$$ math.\n\n" + body + "\n"
    assert relations(doc) == [(at(doc, "y_j"), "read", [("y[j]", "b[j]")])]


def test_a_sum_too_deep_to_read_is_one_entry_not_checked_and_the_next_is_read():
    # 400 terms nest 400 levels deep in Python's ast: that entry alone is not checked
    doc = conv("$$ y = " + " + ".join(["x"] * 400) + " $$\n\n$$ dx = \\mathrm{conv}(g, w) $$\n")
    deep, after = read_document(doc)
    assert (deep.status, deep.reason) == (
        "not checked",
        "an expression nested too deeply to read (split the sum over several lines)",
    )
    assert after.status != "not checked" or "nested" not in after.reason
    assert after.line == deep.line + 2
