# A policy over Terraform's JSON plan representation (`infra plan --json --format terraform`),
# as OPA, conftest or any Rego engine evaluates it: in the environments listed in
# data.infra.protected_environments, a plan may not delete a Secret Manager secret — neither
# outright nor by replacing it, which deletes every version.
package infra.policy

import rego.v1

deny contains message if {
	data.infra.environment in data.infra.protected_environments
	some change in input.resource_changes
	change.type == "secret"
	"delete" in change.change.actions
	message := sprintf(
		"%s: deleting a secret in %s is forbidden (actions: %s); remove it by hand after review",
		[change.address, data.infra.environment, concat(", ", change.change.actions)],
	)
}
