//! Bad-input corpus: configuration files: env.toml and module.toml, each problem `validate` must
//! catch, at its file:line:col with a hint. The dangerous ones also run as `plan` or
//! `apply --auto-approve` on a project whose small configuration is already applied, so "nothing
//! written" covers the state file and the emulator's objects.

use super::{Case, case, run_table};
use crate::support::TestEnv;

const ENV: &str = "envs/test/env.toml";
const MODULE: &str = "modules/app/module.toml";
const HEADER: &str = "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n";
/// The module call of the fixture, as lines 5 to 8 of env.toml.
const MODULE_CALL: &str = "[module.app]\nsource = \"app\"\nprefix = \"core\"\n\n";

/// The fixture's environment: a variable, a secret, and a module with a generated secret.
const GOOD_ENV: &str = "[env]\nname = \"test\"\nproject = \"proj-test\"\nregion = \"us-central1\"\n\n[vars]\nteam = \"core\"\n\n[module.app]\nsource = \"app\"\nprefix = \"${var.team}\"\n\n[resource.secret.db]\nsecret_id = \"db-password\"\nvalue = \"not-a-real-password\"\n";
const GOOD_MODULE: &str = "[input.prefix]\ntype = \"string\"\n\n[resource.secret.token]\nsecret_id = \"${input.prefix}-token\"\ngenerate = { bytes = 32 }\n\n[output.token_name]\nvalue = \"${secret.token.name}\"\n";

/// A project with the fixture's configuration, not applied (for `validate`).
fn project() -> TestEnv {
    let env = TestEnv::empty();
    env.write(ENV, GOOD_ENV);
    env.write(MODULE, GOOD_MODULE);
    env
}

/// A project whose configuration is applied: state and emulator objects exist.
fn applied() -> TestEnv {
    let mut env = project();
    env.start_emulator();
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env
}

/// `validate` of an env.toml made of the [env] header and `body` (which starts on line 5).
fn validate(name: &str, body: &str) -> Case {
    validate_raw(name, &format!("{HEADER}{body}"))
}

/// `validate` of an env.toml written exactly as `text`.
fn validate_raw(name: &str, text: &str) -> Case {
    case(name, &["validate", "--env", "test"]).file(ENV, text)
}

/// `validate` of the fixture's module call with module.toml written as `text`.
fn validate_module(name: &str, text: &str) -> Case {
    validate(name, MODULE_CALL).file(MODULE, text)
}

/// `apply --auto-approve` (plus `extra` flags) of an env.toml written exactly as `text`.
fn apply_raw(name: &str, text: &str, extra: &[&str]) -> Case {
    let mut args = vec!["apply", "--env", "test", "--auto-approve"];
    args.extend(extra);
    case(name, &args).file(ENV, text)
}

/// The cases `validate` answers alone, without an emulator.
fn validate_cases() -> Vec<Case> {
    vec![
        // The environment file itself.
        // The hint itself is asserted: it must say what to add.
        validate_raw("empty env.toml", "").no_hint().names(&[
            "envs/test/env.toml:1:1",
            "has no [env] table",
            "hint: add at the top: [env] with name = \"test\"",
        ]),
        case("env.toml removed", &["validate", "--env", "test"])
            .without(ENV)
            .names(&["environment `test` not found", "envs/test/env.toml does not exist"]),
        case("a variable from the environment that breaks a module", &["validate", "--env", "test"])
            .env("INFRA_VAR_team", "Core Team")
            .names(&["modules/app/module.toml:4:18", "secret_id \"Core Team-token\""]),
        validate_raw("comment-only env.toml", "# the environment\n# nothing yet\n")
            .names(&["envs/test/env.toml:1:1", "has no [env] table"]),
        validate_raw("only [vars] in env.toml", "[vars]\nteam = \"core\"\n")
            .names(&["envs/test/env.toml:1:1", "has no [env] table"]),
        validate_raw("[env] without name", "[env]\nproject = \"p\"\nregion = \"r\"\n")
            .names(&["envs/test/env.toml:1:2", "[env] is missing `name`"]),
        validate_raw("[env] without project", "[env]\nname = \"test\"\nregion = \"r\"\n")
            .names(&["envs/test/env.toml:1:2", "[env] is missing `project`"]),
        validate_raw("[env] without region", "[env]\nname = \"test\"\nproject = \"p\"\n")
            .names(&["envs/test/env.toml:1:2", "[env] is missing `region`"]),
        validate_raw(
            "env.project is an integer",
            "[env]\nname = \"test\"\nproject = 42\nregion = \"r\"\n",
        )
        .names(&["envs/test/env.toml:3:11", "env.project must be a string"]),
        validate_raw(
            "env.project is empty",
            "[env]\nname = \"test\"\nproject = \"\"\nregion = \"r\"\n",
        )
        .names(&["envs/test/env.toml:3:11", "env.project is empty"]),
        validate_raw(
            "env.name differs from its directory",
            "[env]\nname = \"prod\"\nproject = \"p\"\nregion = \"r\"\n",
        )
        .names(&["envs/test/env.toml:2:8", "env.name is `prod`"]),
        validate_raw("unknown key in [env]", &format!("{HEADER}zone = \"us-central1-a\"\n"))
            .names(&["envs/test/env.toml:5:1", "unknown key `zone` in [env]"]),
        validate_raw("[env] is a string", "env = \"test\"\n")
            .names(&["envs/test/env.toml:1:7", "[env] must be a table"]),
        validate("unknown top-level table", "[resources.secret.a]\nsecret_id = \"A\"\n")
            .names(&["envs/test/env.toml:5:2", "unknown key `resources` in env.toml"]),
        validate("unknown backend kind", "[backend]\nkind = \"s3\"\n")
            .names(&["envs/test/env.toml:6:8", "unknown backend kind `s3`"]),
        validate("gcs backend without bucket", "[backend]\nkind = \"gcs\"\n")
            .names(&["envs/test/env.toml:5:2", "a gcs backend needs `bucket`"]),
        validate("gcp.emulator_only is a string", "[gcp]\nemulator_only = \"yes\"\n")
            .names(&["envs/test/env.toml:6:17", "gcp.emulator_only must be a boolean"]),
        validate("emulator.embedded is a string", "[emulator]\nembedded = \"yes\"\n")
            .names(&["envs/test/env.toml:6:12", "emulator.embedded must be a boolean"]),
        validate("a variable computed from an expression", "[vars]\nx = \"${env.name}\"\n")
            .names(&["envs/test/env.toml:6:5", "variables are literal values"]),
        validate("unterminated string", "[resource.secret.a]\nsecret_id = \"A\nvalue = 1\n")
            .names(&["envs/test/env.toml:6:", "invalid TOML"]),
        validate(
            "a key written twice",
            "[resource.secret.a]\nsecret_id = \"A\"\nsecret_id = \"B\"\n",
        )
        .names(&["envs/test/env.toml:7:1", "invalid TOML", "duplicate key"]),
        validate(
            "an integer beyond 64 bits in TOML",
            "[resource.cloud_run_service.web]\nname = \"web\"\nimage = \"gcr.io/p/web\"\nmax_instances = 99999999999999999999\n",
        )
        .names(&["envs/test/env.toml:8:17", "does not fit in 64 bits"]),
        validate(
            "an integer beyond 64 bits in an expression",
            "[resource.secret.a]\nsecret_id = \"a-${lower(99999999999999999999)}\"\n",
        )
        .names(&["envs/test/env.toml:6:", "99999999999999999999 does not fit in 64 bits"]),
        // Resource blocks.
        validate("unknown kind", "[resource.secrets.a]\nsecret_id = \"A\"\n")
            .names(&["envs/test/env.toml:5:11", "unknown resource kind `secrets`", "did you mean `secret`"]),
        validate("unknown field", "[resource.secret.a]\nsecret_id = \"A\"\ncolour = \"red\"\n")
            .names(&["envs/test/env.toml:7:1", "`secret` has no field `colour`"]),
        validate("missing required field", "[resource.secret.a]\nvalue = \"x\"\n")
            .names(&["envs/test/env.toml:5:18", "required field `secret_id` is not set"]),
        validate("a literal of the wrong type", "[resource.secret.a]\nsecret_id = \"A\"\nlabels = 5\n")
            .names(&["envs/test/env.toml:7:10", "`labels` must be a map of strings (got integer)"]),
        validate(
            "a computed value of the wrong type",
            "[vars]\nn = 5\n\n[resource.secret.a]\nsecret_id = \"A\"\nlabels = \"${var.n}\"\n",
        )
        .names(&["envs/test/env.toml:10:10", "`labels` must be a map of strings (got integer)"]),
        validate("secret_id with a space", "[resource.secret.a]\nsecret_id = \"has space\"\n")
            .names(&["envs/test/env.toml:5:18", "secret_id \"has space\""]),
        validate(
            "generate with a trillion bytes",
            "[resource.secret.a]\nsecret_id = \"A\"\ngenerate = { bytes = 1000000000000 }\n",
        )
        .names(&["envs/test/env.toml:7:12", "`generate.bytes` = 1000000000000 is out of range", "16 to 49152"]),
        validate(
            "generate with an unknown encoding",
            "[resource.secret.a]\nsecret_id = \"A\"\ngenerate = { bytes = 32, encoding = \"rot13\" }\n",
        )
        .names(&["envs/test/env.toml:5:18", "generate.encoding = \"rot13\" is not an encoding", "base64url, base64, hex"]),
        validate(
            "generate over 64 KiB once encoded",
            "[resource.secret.a]\nsecret_id = \"A\"\ngenerate = { bytes = 40000, encoding = \"hex\" }\n",
        )
        .names(&["envs/test/env.toml:5:18", "are 80000 bytes, over Secret Manager's 64 KiB", "at most 32768"]),
        validate(
            "generate is not a table",
            "[resource.secret.a]\nsecret_id = \"A\"\ngenerate = true\n",
        )
        .names(&["envs/test/env.toml:5:18", "generate: use { bytes = 32"]),
        validate_raw(
            "a value over 64 KiB",
            &format!("{HEADER}[resource.secret.a]\nsecret_id = \"A\"\nvalue = \"{}\"\n", "x".repeat(70_000)),
        )
        .names(&["envs/test/env.toml:5:18", "value is 70000 bytes, over Secret Manager's 64 KiB"])
        .absent("xxxxxxxxxxxxxxxx"),
        validate(
            "two value sources",
            "[resource.secret.a]\nsecret_id = \"A\"\nvalue = \"x\"\ngenerate = { bytes = 32 }\n",
        )
        .names(&["envs/test/env.toml:5:18", "secret.a:"]),
        validate(
            "unknown old_versions policy",
            "[resource.secret.a]\nsecret_id = \"A\"\nold_versions = \"shred\"\n",
        )
        .names(&["envs/test/env.toml:5:18", "old_versions = \"shred\""]),
        validate(
            "min_instances above max_instances",
            "[resource.cloud_run_service.web]\nname = \"web\"\nimage = \"gcr.io/p/web\"\nmin_instances = 5\nmax_instances = 2\n",
        )
        .names(&["envs/test/env.toml:8:17", "envs/test/env.toml:9:17", "`min_instances` = 5 is greater than `max_instances` = 2"]),
        validate(
            "max_instances beyond int32",
            "[resource.cloud_run_service.web]\nname = \"web\"\nimage = \"gcr.io/p/web\"\nmax_instances = 3000000000\n",
        )
        .names(&["envs/test/env.toml:8:17", "`max_instances` = 3000000000 is out of range", "int32"]),
        validate(
            "negative min_instances",
            "[resource.cloud_run_service.web]\nname = \"web\"\nimage = \"gcr.io/p/web\"\nmin_instances = -1\n",
        )
        .names(&["envs/test/env.toml:8:17", "`min_instances` = -1 is out of range"]),
        validate(
            "traffic percents that do not add up",
            "[resource.cloud_run_service.web]\nname = \"web\"\nimage = \"gcr.io/p/web\"\ntraffic = [{ latest = true, percent = 60 }]\n",
        )
        .names(&["envs/test/env.toml:5:29", "percents add up to 60, not 100"]),
        validate(
            "cloud run name with capitals",
            "[resource.cloud_run_service.web]\nname = \"Web\"\nimage = \"gcr.io/p/web\"\n",
        )
        .names(&["envs/test/env.toml:5:29", "name \"Web\""]),
        validate(
            "budget of zero",
            "[resource.budget.b]\nbilling_account = \"ABCDEF-123456-ABCDEF\"\ndisplay_name = \"b\"\namount = 0\n",
        )
        .names(&["envs/test/env.toml:8:10", "`amount` = 0 is out of range"]),
        validate(
            "negative budget threshold",
            "[resource.budget.b]\nbilling_account = \"ABCDEF-123456-ABCDEF\"\ndisplay_name = \"b\"\namount = 10\nthreshold_rules = [{ percent = -0.5 }]\n",
        )
        .names(&["envs/test/env.toml:9:19", "`threshold_rules[0].percent` = -0.5 is out of range"]),
        validate(
            "dashboard with 49 columns",
            "[resource.monitoring_dashboard.d]\ndisplay_name = \"d\"\ndashboard_json = { mosaicLayout = { columns = 49, tiles = [] } }\n",
        )
        .names(&["envs/test/env.toml:7:18", "`dashboard_json.mosaicLayout.columns` = 49", "between 1 and 48"]),
        validate(
            "dashboard tile of width zero in a JSON string",
            "[resource.monitoring_dashboard.d]\ndisplay_name = \"d\"\ndashboard_json = '{\"mosaicLayout\": {\"columns\": 48, \"tiles\": [{\"xPos\": 0, \"yPos\": 0, \"width\": 0, \"height\": 4}]}}'\n",
        )
        .names(&["envs/test/env.toml:7:18", "`dashboard_json.mosaicLayout.tiles[0].width` = 0"]),
        validate(
            "dashboard tile past the grid's edge",
            "[resource.monitoring_dashboard.d]\ndisplay_name = \"d\"\ndashboard_json = { mosaicLayout = { columns = 12, tiles = [{ xPos = 8, yPos = 0, width = 6, height = 4 }] } }\n",
        )
        .names(&["envs/test/env.toml:5:32", "tiles[0] (xPos 8, width 6) does not fit the 12-column grid", "xPos + width at most 12"]),
        validate(
            "dashboard JSON that does not parse",
            "[resource.monitoring_dashboard.d]\ndisplay_name = \"d\"\ndashboard_json = '{\"mosaicLayout\": '\n",
        )
        .names(&["envs/test/env.toml:5:32", "dashboard_json is not valid JSON"]),
        // Two addresses, one cloud object.
        validate(
            "two secrets with one secret_id",
            "[resource.secret.a]\nsecret_id = \"shared\"\n\n[resource.secret.b]\nsecret_id = \"shared\"\n",
        )
        .names(&["envs/test/env.toml:5:18", "envs/test/env.toml:8:18", "secret.a", "secret.b", "projects/proj-test/secrets/shared"]),
        validate(
            "two service accounts with one account_id",
            "[resource.service_account.a]\naccount_id = \"runner\"\n\n[resource.service_account.b]\naccount_id = \"runner\"\n",
        )
        .names(&["envs/test/env.toml:5:27", "envs/test/env.toml:8:27", "service_account.a", "service_account.b", "runner@proj-test.iam.gserviceaccount.com"]),
        validate(
            "two iam_member blocks granting the same thing",
            "[resource.iam_member.a]\nparent = \"projects/proj-test\"\nrole = \"roles/viewer\"\nmember = \"user:a@example.com\"\n\n[resource.iam_member.b]\nparent = \"projects/proj-test\"\nrole = \"roles/viewer\"\nmember = \"user:a@example.com\"\n",
        )
        .names(&["envs/test/env.toml:5:22", "envs/test/env.toml:10:22", "iam_member.a", "iam_member.b"]),
        validate(
            "a block and a module naming one secret",
            "[module.app]\nsource = \"app\"\nprefix = \"core\"\n\n[resource.secret.a]\nsecret_id = \"core-token\"\n",
        )
        .names(&["envs/test/env.toml:9:18", "modules/app/module.toml:4:18", "secret.a", "module.app.secret.token"]),
        validate(
            "for_each instances with one secret_id",
            "[resource.secret.a]\nfor_each = [\"x\", \"y\"]\nsecret_id = \"same\"\n",
        )
        .names(&["envs/test/env.toml:5:18", "secret.a[\"x\"]", "secret.a[\"y\"]", "name the same secret"]),
        // for_each.
        validate(
            "for_each with a repeated item",
            "[resource.secret.a]\nfor_each = [\"x\", \"y\", \"x\"]\nsecret_id = \"s-${each.key}\"\n",
        )
        .names(&["envs/test/env.toml:6:12", "for_each has the key \"x\" twice"]),
        validate(
            "for_each items that become one key",
            "[resource.secret.a]\nfor_each = [1, \"1\"]\nsecret_id = \"s-${each.key}\"\n",
        )
        .names(&["envs/test/env.toml:6:12", "for_each has the key \"1\" twice"]),
        validate("for_each over a string", "[resource.secret.a]\nfor_each = \"x\"\nsecret_id = \"s-${each.key}\"\n")
            .names(&["envs/test/env.toml:6:12", "for_each must be a map or a list of strings (got string)"]),
        validate(
            "for_each over a list of tables",
            "[resource.secret.a]\nfor_each = [{ a = 1 }]\nsecret_id = \"s-${each.key}\"\n",
        )
        .names(&["envs/test/env.toml:6:12", "for_each over a list needs strings"]),
        validate("each without for_each", "[resource.secret.a]\nsecret_id = \"s-${each.key}\"\n")
            .names(&["envs/test/env.toml:6:", "`each` is only defined in a resource with for_each"]),
        validate(
            "a for_each block referenced without a key",
            "[resource.secret.a]\nfor_each = [\"x\"]\nsecret_id = \"s-${each.key}\"\n\n[resource.secret.b]\nsecret_id = \"b\"\nannotations = { of = \"${secret.a.name}\" }\n",
        )
        .names(&["envs/test/env.toml:11:", "secret.a uses for_each"]),
        // Functions and references.
        validate("unknown function", "[resource.secret.a]\nsecret_id = \"${shout(env.name)}\"\n")
            .names(&["envs/test/env.toml:6:", "unknown function `shout`"]),
        validate("a function with too many arguments", "[resource.secret.a]\nsecret_id = \"${lower(env.name, env.region)}\"\n")
            .names(&["envs/test/env.toml:6:", "lower()"]),
        validate(
            "zipmap with a repeated key",
            "[vars]\nkeys = [\"k\", \"k\"]\nvalues = [\"1\", \"2\"]\n\n[resource.secret.a]\nsecret_id = \"A\"\nlabels = \"${zipmap(var.keys, var.values)}\"\n",
        )
        .names(&["envs/test/env.toml:11:", "zipmap(): the key \"k\" appears more than once"]),
        validate(
            "json of text that is not JSON",
            "[resource.secret.a]\nsecret_id = \"A\"\nlabels = \"${json(\\\"{nope\\\")}\"\n",
        )
        .names(&["envs/test/env.toml:7:", "json(): not valid JSON"]),
        validate("file that does not exist", "[resource.secret.a]\nsecret_id = \"A\"\nvalue = \"${file(\\\"missing.txt\\\")}\"\n")
            .names(&["envs/test/env.toml:7:", "missing.txt"]),
        validate(
            "a table interpolated into a string",
            "[vars]\nm = { a = \"b\" }\n\n[resource.secret.a]\nsecret_id = \"x-${var.m}\"\n",
        )
        .names(&["envs/test/env.toml:9:", "cannot put a map into a string"]),
        validate("a malformed expression", "[resource.secret.a]\nsecret_id = \"${var.}\"\n")
            .names(&["envs/test/env.toml:6:", "error[expression]"]),
        validate("an undeclared variable", "[resource.secret.a]\nsecret_id = \"${var.nope}\"\n")
            .names(&["envs/test/env.toml:6:", "`var.nope`: no such variable"]),
        validate("a reference to a missing resource", "[resource.secret.a]\nsecret_id = \"A\"\nannotations = { b = \"${secret.missing.name}\" }\n")
            .names(&["envs/test/env.toml:7:", "no resource `secret.missing` in this module"]),
        validate(
            "a reference cycle",
            "[resource.secret.a]\nsecret_id = \"${secret.b.secret_id}x\"\n\n[resource.secret.b]\nsecret_id = \"${secret.a.secret_id}y\"\n",
        )
        .names(&["envs/test/env.toml:5:18", "cycle"]),
        // depends_on and lifecycle.
        validate("depends_on an unknown resource", "[resource.secret.a]\nsecret_id = \"A\"\ndepends_on = [\"secret.nope\"]\n")
            .names(&["envs/test/env.toml:7:15", "depends_on: no resource `secret.nope`"]),
        validate("depends_on is a string", "[resource.secret.a]\nsecret_id = \"A\"\ndepends_on = \"secret.b\"\n")
            .names(&["envs/test/env.toml:7:14", "depends_on must be a list"]),
        validate("depends_on holds a number", "[resource.secret.a]\nsecret_id = \"A\"\ndepends_on = [3]\n")
            .names(&["envs/test/env.toml:7:15", "depends_on entries are strings"]),
        validate("unknown lifecycle key", "[resource.secret.a]\nsecret_id = \"A\"\nlifecycle = { prevent_delete = true }\n")
            .names(&["envs/test/env.toml:7:15", "unknown key `prevent_delete` in lifecycle"]),
        validate("prevent_destroy is a string", "[resource.secret.a]\nsecret_id = \"A\"\nlifecycle = { prevent_destroy = \"yes\" }\n")
            .names(&["envs/test/env.toml:7:33", "lifecycle.prevent_destroy must be a boolean"]),
        validate("ignore_changes is a string", "[resource.secret.a]\nsecret_id = \"A\"\nlifecycle = { ignore_changes = \"labels\" }\n")
            .names(&["envs/test/env.toml:7:32", "lifecycle.ignore_changes must be a list of strings"]),
        validate(
            "ignore_changes names no field",
            "[resource.secret.a]\nsecret_id = \"A\"\nlifecycle = { ignore_changes = [\"lables\"] }\n",
        )
        .names(&["envs/test/env.toml:5:18", "ignore_changes names `lables`", "did you mean `labels`"]),
        validate(
            "ignore_changes holds a number",
            "[resource.secret.a]\nsecret_id = \"A\"\nlifecycle = { ignore_changes = [1] }\n",
        )
        .names(&["envs/test/env.toml:7:33", "lifecycle.ignore_changes entries are field names"]),
        // Modules.
        validate("unknown module source", "[module.app]\nsource = \"nope\"\n")
            .names(&["envs/test/env.toml:6:10", "module source `nope`", "available modules: app"]),
        validate("module without source", "[module.app]\nprefix = \"core\"\n")
            .names(&["envs/test/env.toml:5:9", "module `app` has no `source`"]),
        validate("missing module input", "[module.app]\nsource = \"app\"\n")
            .names(&["envs/test/env.toml:5:9", "missing the required input `prefix`"]),
        validate("unknown module argument", "[module.app]\nsource = \"app\"\nprefix = \"core\"\nsuffix = \"x\"\n")
            .names(&["envs/test/env.toml:8:1", "has no input `suffix`"]),
        validate_module(
            "module input of the wrong type",
            "[input.prefix]\ntype = \"number\"\n\n[resource.secret.token]\nsecret_id = \"t-${input.prefix}\"\n",
        )
        .names(&["envs/test/env.toml:7:10", "input `prefix` must be a number (got string)"]),
        validate_module("module input with an unknown type", "[input.prefix]\ntype = \"strng\"\n")
            .names(&["modules/app/module.toml:2:8", "input.prefix.type is not a type"]),
        validate_module("module input default of the wrong type", "[input.prefix]\ntype = \"number\"\ndefault = \"x\"\n")
            .names(&["modules/app/module.toml:3:11", "the default is a string, not a number"]),
        validate_module(
            "a module reading a variable",
            "[input.prefix]\ntype = \"string\"\n\n[resource.secret.token]\nsecret_id = \"${var.team}\"\n",
        )
        .names(&["modules/app/module.toml:5:", "modules read inputs, not variables"]),
        validate_module("a module output without value", "[input.prefix]\ntype = \"string\"\n\n[output.name]\ndescription = \"x\"\n")
            .names(&["modules/app/module.toml:4:9", "output `name` has no `value`"]),
        validate(
            "an unknown module output",
            "[module.app]\nsource = \"app\"\nprefix = \"core\"\n\n[resource.secret.a]\nsecret_id = \"A\"\nannotations = { t = \"${module.app.nope}\" }\n",
        )
        .names(&["envs/test/env.toml:11:", "no such module output"]),
        validate_module("unknown key in module.toml", "[inputs.prefix]\ntype = \"string\"\n")
            .names(&["modules/app/module.toml:1:2", "unknown key `inputs` in a module"]),
        validate_module("module.toml that does not parse", "[input.prefix\ntype = \"string\"\n")
            .names(&["modules/app/module.toml:1:", "invalid TOML"]),
    ]
}

/// The cases that run `plan` or `apply` on an applied project: nothing may be written.
fn applied_cases() -> Vec<Case> {
    let declares_nothing = format!("{HEADER}\n[vars]\nteam = \"core\"\n");
    let duplicate = GOOD_ENV.replace(
        "[resource.secret.db]",
        "[resource.secret.copy]\nsecret_id = \"db-password\"\nvalue = \"other\"\n\n[resource.secret.db]",
    );
    vec![
        apply_raw("apply of an empty env.toml", "", &[])
            .names(&["envs/test/env.toml:1:1", "has no [env] table"]),
        apply_raw("apply of a comment-only env.toml", "# emptied by mistake\n", &[])
            .names(&["envs/test/env.toml:1:1", "has no [env] table"]),
        apply_raw("apply of an env.toml with only [vars]", "[vars]\nteam = \"core\"\n", &[])
            .names(&["envs/test/env.toml:1:1", "has no [env] table"]),
        apply_raw("apply of an environment that declares nothing", &declares_nothing, &[])
            .names(&["envs/test/env.toml:1:1", "declares no resources", "holds 2", "--allow-empty-config", "infra destroy --env test"]),
        // Exit 1, an error: not 2, which would mean "a plan with changes".
        case("plan of an environment that declares nothing", &["plan", "--env", "test", "--detailed-exitcode"])
            .code(1)
            .file(ENV, &declares_nothing)
            .names(&["envs/test/env.toml:1:1", "declares no resources", "--allow-empty-config"]),
        case("plan --replace of an unknown address", &["plan", "--env", "test", "--replace", "secret.dbb"])
            .names(&["--replace secret.dbb", "did you mean `secret.db`"]),
        apply_raw("apply --replace of an unknown module address", GOOD_ENV, &["--replace", "module.app.secret.tokn"])
            .names(&["--replace module.app.secret.tokn", "did you mean `module.app.secret.token`"]),
        apply_raw(
            "apply --replace with a generate that cannot be made",
            &GOOD_ENV.replace(
                "value = \"not-a-real-password\"",
                "generate = { bytes = 1000000000000, encoding = \"rot13\" }",
            ),
            &["--replace", "secret.db"],
        )
        .names(&["envs/test/env.toml:15:12", "`generate.bytes` = 1000000000000", "\"rot13\" is not an encoding"]),
        apply_raw("apply of two blocks sharing a secret", &duplicate, &[])
            .names(&["envs/test/env.toml:13:18", "envs/test/env.toml:17:18", "secret.copy", "secret.db"])
            .absent("not-a-real-password"),
        apply_raw(
            "apply of a renamed block whose old address holds its secret",
            &GOOD_ENV.replace("[resource.secret.db]", "[resource.secret.database]"),
            &[],
        )
        .names(&["envs/test/env.toml:13:18", "secret.database names secret `projects/proj-test/secrets/db-password`, which the state holds as secret.db", "infra state mv --env test 'secret.db' 'secret.database'"]),
        apply_raw(
            "apply of an integer beyond 64 bits",
            &format!("{GOOD_ENV}\n[resource.cloud_run_service.web]\nname = \"web\"\nimage = \"gcr.io/p/web\"\nmax_instances = 9223372036854775808\n"),
            &[],
        )
        .names(&["envs/test/env.toml:20:17", "does not fit in 64 bits"]),
        apply_raw(
            "apply of min_instances above max_instances",
            &format!("{GOOD_ENV}\n[resource.cloud_run_service.web]\nname = \"web\"\nimage = \"gcr.io/p/web\"\nmin_instances = 3\nmax_instances = 1\n"),
            &[],
        )
        .names(&["envs/test/env.toml:20:17", "envs/test/env.toml:21:17", "is greater than `max_instances`"]),
        apply_raw(
            "apply of a repeated for_each item",
            &format!("{GOOD_ENV}\n[resource.secret.each]\nfor_each = [\"a\", \"a\"]\nsecret_id = \"e-${{each.key}}\"\n"),
            &[],
        )
        .names(&["envs/test/env.toml:18:12", "for_each has the key \"a\" twice"]),
    ]
}

/// The cases of this table.
pub fn cases() -> Vec<Case> {
    let mut cases = validate_cases();
    cases.extend(applied_cases());
    cases
}

#[test]
fn config_bad_inputs() {
    run_table(&project, &validate_cases());
}

#[test]
fn config_bad_inputs_on_an_applied_project() {
    run_table(&applied, &applied_cases());
}
