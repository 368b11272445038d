"""Evaluates a Rego policy over a Terraform-format JSON plan with regopy (the Rego engine
Microsoft's regorus, published on PyPI), the way OPA or conftest would, and checks the verdict
the caller expects: `--expect-deny ADDRESS` (repeatable) or `--expect-allow`. Exits 1 when the
verdict differs, so a policy that silently stops matching fails CI."""

import argparse
import base64
import json
import sys

import regopy


def evaluate(policy_paths, plan, data):
    interpreter = regopy.Interpreter()
    for path in policy_paths:
        with open(path, encoding="utf-8") as policy:
            interpreter.add_module(path, policy.read())
    interpreter.add_data_json(json.dumps(data))
    interpreter.set_input(plan)
    # regopy 1.5.2 renders its result without escaping quotes inside strings, and addresses
    # hold quotes (secret.beta["KEY"]): the messages travel base64-encoded instead.
    output = interpreter.query(
        "[base64.encode(message) | some message in data.infra.policy.deny]"
    )
    if not output.ok():
        raise SystemExit(f"error: the policy did not evaluate: {output}")
    encoded = json.loads(str(output))["expressions"][0]
    return sorted(base64.b64decode(text).decode("utf-8") for text in encoded)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("plan", help="a plan from `infra plan --json --format terraform`")
    parser.add_argument("--policy", action="append", required=True)
    parser.add_argument("--environment", required=True)
    parser.add_argument("--protected", action="append", default=["prod"])
    verdict = parser.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--expect-deny", action="append", metavar="ADDRESS")
    verdict.add_argument("--expect-allow", action="store_true")
    arguments = parser.parse_args()

    with open(arguments.plan, encoding="utf-8") as plan_file:
        plan = json.load(plan_file)
    data = {
        "infra": {
            "environment": arguments.environment,
            "protected_environments": arguments.protected,
        }
    }
    messages = evaluate(arguments.policy, plan, data)
    for message in messages:
        print(f"deny: {message}")
    if arguments.expect_allow:
        if messages:
            print(f"error: {arguments.plan}: expected no denial", file=sys.stderr)
            return 1
        print(f"ok: {arguments.plan}: allowed in {arguments.environment}")
        return 0
    denied = {message.split(":", 1)[0] for message in messages}
    expected = set(arguments.expect_deny)
    if denied != expected:
        print(
            f"error: {arguments.plan}: denied {sorted(denied)}, expected {sorted(expected)}",
            file=sys.stderr,
        )
        return 1
    print(f"ok: {arguments.plan}: denied as expected in {arguments.environment}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
