//! Planning: the plan model, structural diff, the planner, renderers and plan files.

pub mod change_graph;
pub mod diff;
pub mod file;
pub mod markdown;
pub mod model;
pub mod planner;
pub mod refresh_only;
pub mod render;
pub mod target;
pub mod terraform_json;

pub use model::{Action, Plan, ResourceChange};
pub use planner::{
    PlanError, PlanOptions, Refreshed, make_plan, make_plan_with_progress, plan_refreshed,
    refresh_for_plan,
};
