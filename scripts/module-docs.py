#!/usr/bin/env python3
"""Writes the inputs and outputs tables of each Terraform module's README.md between
terraform-docs markers, from the modules' own variables.tf and outputs.tf (parsed with
python-hcl2, which checkov brings into .tools/venv).

Run: .tools/venv/bin/python scripts/module-docs.py
"""
import pathlib
import re

import hcl2

ROOT = pathlib.Path(__file__).resolve().parent.parent / "terraform"
BEGIN, END = "<!-- BEGIN_TF_DOCS -->", "<!-- END_TF_DOCS -->"


def clean(value):
    # Older python-hcl2 releases wrap every attribute value in a one-element list.
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool):
        value = str(value).lower()
    if value is None:
        value = "null"
    text = str(value)
    # python-hcl2 keeps interpolation wrappers: ${string} -> string
    text = re.sub(r"^\$\{(.*)\}$", r"\1", text)
    return text.replace("|", "\\|").replace("\n", " ")


def tables(module: pathlib.Path) -> str:
    variables, outputs = [], []
    for tf in sorted(module.glob("*.tf")):
        parsed = hcl2.loads(tf.read_text())
        for block in parsed.get("variable", []):
            for name, spec in block.items():
                default = f"`{clean(spec['default'])}`" if "default" in spec else "required"
                variables.append(f"| `{name}` | {clean(spec.get('description', ''))} | `{clean(spec.get('type', 'any'))}` | {default} |")
        for block in parsed.get("output", []):
            for name, spec in block.items():
                outputs.append(f"| `{name}` | {clean(spec.get('description', ''))} |")
    lines = ["## Inputs", "", "| name | description | type | default |", "| --- | --- | --- | --- |", *variables, ""]
    lines += ["## Outputs", "", "| name | description |", "| --- | --- |", *outputs]
    return "\n".join(lines)


def main():
    for module in [ROOT, ROOT / "bootstrap", *sorted((ROOT / "modules").iterdir())]:
        readme = module / "README.md"
        text = readme.read_text() if readme.exists() else f"# {module.name}\n\n{BEGIN}\n{END}\n"
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        readme.write_text(f"{head}{BEGIN}\n{tables(module)}\n{END}{tail}")


if __name__ == "__main__":
    main()
