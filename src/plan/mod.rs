//! Planning: the plan model, structural diff, the planner, renderers and plan files.

pub mod diff;
pub mod file;
pub mod model;
pub mod planner;
pub mod render;

pub use model::{Action, Plan, ResourceChange};
pub use planner::{PlanError, PlanOptions, make_plan};
