//! YAML configuration: schema, defaults, validation, compilation into [`model::Config`].

pub mod model;
