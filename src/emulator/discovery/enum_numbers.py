#!/usr/bin/env python3
"""Writes enum-numbers.json: the proto number of every enum value of the APIs the emulator
serves, keyed by proto package and enum name (`google.cloud.billing.budgets.v1` →
`CalendarPeriod`), because discovery documents list enum names in an order that is not the
proto numbering, and enums of one name differ between packages (google.type's CalendarPeriod
numbers QUARTER 5, Billing Budgets' numbers it 2). Also writes presence.json: per message, the
fields with explicit presence (wrapper types, proto3 `optional`), which proto3 JSON writes even
when they hold the default value.

The numbers come from Google's official clients, generated from the googleapis .proto files:
the Rust crates (`google-cloud-*`), and for an API no Rust crate covers (Billing Budgets), the
Python proto-plus package. Run from the repository root after `cargo fetch`:
    pip download google-cloud-billing-budgets==1.22.0 --no-deps -d /tmp/budgets
    unzip -q -o /tmp/budgets/*.whl -d /tmp/budgets/wheel
    python3 src/emulator/discovery/enum_numbers.py ~/.cargo/registry/src/*/ \
        /tmp/budgets/wheel/google/cloud/billing/budgets_v1
"""
import ast
import json
import os
import re
import sys

CRATES = (
    "google-cloud-secretmanager-v1", "google-cloud-run-v2", "google-cloud-iam-admin-v1",
    "google-cloud-iam-v1", "google-cloud-resourcemanager-v3", "google-cloud-monitoring-dashboard-v1",
    "google-cloud-monitoring-v3", "google-cloud-longrunning", "google-cloud-api", "google-cloud-type",
    "google-cloud-rpc",
)
VALUE = re.compile(r"Self::(\w+) => std::option::Option::Some\((-?\d+)\)")
NAME = re.compile(r"Self::(\w+) =>\s*\{?\s*std::option::Option::Some\(\"(\w+)\"\)")
IMPL = re.compile(r"\nimpl (\w+) \{|\n\s+impl (\w+) \{")


def split_full_name(full):
    """`google.monitoring.v3.AlertPolicy.Condition.X` → (`google.monitoring.v3`, `AlertPolicy.Condition.X`)."""
    parts = full.split(".")
    first_type = next(index for index, part in enumerate(parts) if part[:1].isupper())
    return ".".join(parts[:first_type]), ".".join(parts[first_type:])


def rust_enums(text):
    """Yields (package, enum, values) for each enum of a generated Rust model file: the values
    from its `value()`/`name()` pair, its proto name from the `EnumVisitor` that follows them."""
    for block in re.finditer(r"pub fn value\(&self\) -> std::option::Option<i32>.*?pub fn name\(&self\)(.*?)\n\s*}\n\s*}\n", text, re.S):
        numbers = dict(VALUE.findall(block.group(0)))
        names = dict(NAME.findall(block.group(1)))
        if not numbers or names.keys() != numbers.keys():
            continue
        impls = [match.group(1) or match.group(2) for match in IMPL.finditer(text, 0, block.start())]
        if not impls:
            continue
        visitor = re.compile(r"EnumVisitor::<%s>::new\(\s*\"\.([\w.]+)\"" % impls[-1]).search(text, block.end())
        if visitor is None:
            continue
        package, enum = split_full_name(visitor.group(1))
        yield package, enum, {names[key]: int(numbers[key]) for key in numbers}


def python_enums(text):
    """Yields (package, enum, values) for each `proto.Enum` of a proto-plus module."""
    tree = ast.parse(text)
    package = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "__protobuf__" for target in node.targets):
            for keyword in getattr(node.value, "keywords", []):
                if keyword.arg == "package":
                    package = keyword.value.value
    if package is None:
        return

    def walk(body, outer):
        for node in body:
            if not isinstance(node, ast.ClassDef):
                continue
            name = ".".join(outer + [node.name])
            if any(isinstance(base, ast.Attribute) and base.attr == "Enum" for base in node.bases):
                values = {}
                for item in node.body:
                    if (isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant)
                            and isinstance(item.value.value, int)):
                        values[item.targets[0].id] = item.value.value
                if values:
                    yield package, name, values
            else:
                yield from walk(node.body, outer + [node.name])

    yield from walk(tree.body, [])


PRESENCE = re.compile(
    r"pub (?:r#)?(\w+): std::option::Option<(?:wkt::(?:Bool|U?Int32|U?Int64|String|Double|Float)Value|bool|i32|i64|u32|u64|f32|f64|std::string::String)>,")


def camel(name):
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def presence_in(text):
    for struct in re.finditer(r"pub struct (\w+) \{\n(.*?)\n\s*\}\n", text, re.S):
        fields = [camel(field) for field in PRESENCE.findall(struct.group(2))]
        if fields:
            yield struct.group(1), fields


def source_files(top, suffix):
    for root, _, files in os.walk(top):
        for file in sorted(files):
            if file.endswith(suffix):
                with open(os.path.join(root, file), encoding="utf-8") as handle:
                    yield handle.read()


def main(registry, python_packages):
    enums = {}
    presence = {}

    def add(package, enum, values):
        known = enums.setdefault(package, {}).get(enum)
        if known is not None and known != values:
            sys.exit(f"{package}.{enum} is numbered two ways: {known} and {values}")
        enums[package][enum] = values

    for crate in sorted(os.listdir(registry)):
        if not crate.rsplit("-", 1)[0] in CRATES:
            continue
        for text in source_files(os.path.join(registry, crate, "src"), ".rs"):
            for found in rust_enums(text):
                add(*found)
            for struct, fields in presence_in(text):
                presence.setdefault(struct, set()).update(fields)
    for top in python_packages:
        for text in source_files(top, ".py"):
            if "proto.Enum" in text:
                for found in python_enums(text):
                    add(*found)
    here = os.path.dirname(__file__)
    with open(os.path.join(here, "enum-numbers.json"), "w") as handle:
        json.dump(enums, handle, indent=0, sort_keys=True)
        handle.write("\n")
    with open(os.path.join(here, "presence.json"), "w") as handle:
        json.dump({key: sorted(value) for key, value in presence.items()}, handle, indent=0, sort_keys=True)
        handle.write("\n")
    count = sum(len(values) for values in enums.values())
    print(f"{count} enums in {len(enums)} packages, {len(presence)} messages with presence fields")


main(sys.argv[1], sys.argv[2:])
