#!/usr/bin/env python3
"""Writes enum-numbers.json: the proto number of every enum value of the APIs the emulator
serves, read from Google's official Rust clients (generated from the googleapis .proto files),
because discovery documents list enum names in an order that is not the proto numbering; and
presence.json: per message, the fields with explicit presence (wrapper types, proto3
`optional`), which proto3 JSON writes even when they hold the default value.

Run from the repository root after `cargo fetch`:
    python3 src/emulator/discovery/enum_numbers.py ~/.cargo/registry/src/*/
"""
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


def enums_in(text):
    for block in re.finditer(r"pub fn value\(&self\).*?pub fn name\(&self\)(.*?)\n\s*}\n\s*}\n", text, re.S):
        numbers = dict(VALUE.findall(block.group(0)))
        names = dict(NAME.findall(block.group(1)))
        if numbers and names.keys() == numbers.keys():
            yield {names[key]: int(numbers[key]) for key in numbers}


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


def main(registry):
    found = []
    presence = {}
    for crate in sorted(os.listdir(registry)):
        if not crate.rsplit("-", 1)[0] in CRATES:
            continue
        for root, _, files in os.walk(os.path.join(registry, crate, "src")):
            for file in files:
                if file.endswith(".rs"):
                    with open(os.path.join(root, file), encoding="utf-8") as handle:
                        text = handle.read()
                    found.extend(enums_in(text))
                    for struct, fields in presence_in(text):
                        presence.setdefault(struct, set()).update(fields)
    unique = {json.dumps(values, sort_keys=True): values for values in found}
    out = sorted(unique.values(), key=lambda values: sorted(values))
    with open(os.path.join(os.path.dirname(__file__), "enum-numbers.json"), "w") as handle:
        json.dump(out, handle, indent=0, sort_keys=True)
        handle.write("\n")
    with open(os.path.join(os.path.dirname(__file__), "presence.json"), "w") as handle:
        json.dump({key: sorted(value) for key, value in presence.items()}, handle, indent=0, sort_keys=True)
        handle.write("\n")
    print(f"{len(out)} enums, {len(presence)} messages with presence fields")


main(sys.argv[1])
