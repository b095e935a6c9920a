//! Resources: typed, configurable dependencies that ops receive instead of building them (a
//! warehouse client, an HTTP client, a model), Dagster's resources.
//!
//! A resource is a type that implements [`Resource`]: its config type, read from run config
//! at `resources.<name>.config`, and its constructor. A job provides resources, each under a
//! name ([`JobBuilder::resource`](crate::graph::JobBuilder::resource); `#[job(resources(name
//! = Type))]` in `job!`); an op asks for the ones it needs by type
//! ([`OpDef::needs`](crate::op::OpDef::needs); a `&Type` parameter of an `#[op]` function) and reads them with
//! [`OpContext::resource`](crate::op::OpContext::resource).
//!
//! A resource is built lazily, the first time a step that needs it runs: once per run on
//! the embedded executor, once per step process (a warm runner serves many steps of its run)
//! on Dask. A build that fails fails that step with the error and its causes, and the op's
//! retry policy applies; the next attempt builds it again. Teardown is `Drop`, when the run
//! (or the step process) ends.
//!
//! ```
//! use dagster_dask::op::BoxError;
//! use dagster_dask::prelude::*;
//!
//! struct Greeter {
//!     greeting: String,
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct GreeterConfig {
//!     greeting: String,
//! }
//!
//! impl Resource for Greeter {
//!     type Config = GreeterConfig;
//!     fn build(config: GreeterConfig, _ctx: &ResourceContext) -> Result<Self, BoxError> {
//!         Ok(Greeter { greeting: config.greeting })
//!     }
//! }
//!
//! #[op]
//! fn greet(greeter: &Greeter) -> String {
//!     format!("{}, dask", greeter.greeting)
//! }
//!
//! job! {
//!     #[job(resources(greeter = Greeter))]
//!     fn greeting() {
//!         greet();
//!     }
//! }
//!
//! let job = greeting();
//! let config = RunConfig::from_yaml("resources: { greeter: { config: { greeting: hi } } }", &job)
//!     .unwrap();
//! let result = Run::new(&job).config(config).in_memory().execute().unwrap();
//! assert_eq!(result.output::<String>("greet").unwrap(), "hi, dask");
//! ```

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde::de::DeserializeOwned;

use crate::error::BoxError;

/// A typed dependency ops receive; see the [module docs](self).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a resource",
    label = "an op parameter taken by reference is a resource",
    note = "implement `dagster_dask::resource::Resource` for `{Self}`; if this is an input, take \
            it owned (`String` for `&str`, `Vec<T>` for `&[T]`)"
)]
pub trait Resource: Send + Sync + Sized + 'static {
    /// Its config, from run config `resources.<name>.config`, checked before the run.
    type Config: DeserializeOwned;

    /// Builds it from its config.
    fn build(config: Self::Config, ctx: &ResourceContext) -> Result<Self, BoxError>;
}

/// What a resource's constructor knows of the run.
#[derive(Debug)]
pub struct ResourceContext {
    run_id: String,
    name: String,
}

impl ResourceContext {
    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The resource's name in the job (its key in run config).
    pub fn name(&self) -> &str {
        &self.name
    }
}

type Built = Arc<dyn Any + Send + Sync>;
type BuildFn = fn(&serde_json::Value, &ResourceContext) -> Result<Built, BoxError>;

/// A resource a job provides, with its type erased.
#[derive(Clone)]
pub(crate) struct ResourceSpec {
    pub(crate) name: String,
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
    /// Checks a config value against the resource's config type.
    pub(crate) check: crate::op::ConfigCheck,
    /// Checks that the config may be left out.
    pub(crate) check_absent: fn() -> Result<(), String>,
    /// The config used when none is given.
    absent: fn() -> &'static serde_json::Value,
    build: BuildFn,
}

impl fmt::Debug for ResourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceSpec")
            .field("name", &self.name)
            .field("type", &self.type_name)
            .finish_non_exhaustive()
    }
}

fn build<R: Resource>(value: &serde_json::Value, ctx: &ResourceContext) -> Result<Built, BoxError> {
    let config: R::Config = serde_path_to_error::deserialize(value).map_err(|e| {
        format!(
            "config of resource `{}` (run config `resources.{}.config`) does not fit `{}`: {e}",
            ctx.name,
            ctx.name,
            crate::codec::type_name_of::<R::Config>()
        )
    })?;
    Ok(Arc::new(R::build(config, ctx)?))
}

impl ResourceSpec {
    pub(crate) fn of<R: Resource>(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            type_id: TypeId::of::<R>(),
            type_name: crate::codec::type_name_of::<R>(),
            check: crate::op::check_config::<R::Config>,
            check_absent: crate::op::check_absent_config::<R::Config>,
            absent: crate::op::absent_config::<R::Config>,
            build: build::<R>,
        }
    }
}

/// A resource type an op needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Need {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
}

impl Need {
    pub(crate) fn of<R: Resource>() -> Self {
        Self {
            type_id: TypeId::of::<R>(),
            type_name: crate::codec::type_name_of::<R>(),
        }
    }
}

/// The resources of one run in one process, each built the first time a step asks for it
/// and dropped with the set (at the end of the run, or of the step process).
pub(crate) struct Resources {
    run_id: String,
    specs: Vec<ResourceSpec>,
    config: BTreeMap<String, serde_json::Value>,
    built: Mutex<Vec<Option<Built>>>,
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resources")
            .field("specs", &self.specs)
            .finish_non_exhaustive()
    }
}

impl Resources {
    /// The job's resources (`specs`), configured by run config (`config`, by name).
    pub(crate) fn new(
        run_id: &str,
        specs: &[ResourceSpec],
        config: &BTreeMap<String, serde_json::Value>,
    ) -> Self {
        Self {
            run_id: run_id.to_owned(),
            specs: specs.to_vec(),
            config: config.clone(),
            built: Mutex::new(vec![None; specs.len()]),
        }
    }

    /// The resource of type `R`, built now if it was not yet.
    pub(crate) fn get<R: Resource>(&self) -> Result<Arc<R>, BoxError> {
        let Some(k) = self
            .specs
            .iter()
            .position(|s| s.type_id == TypeId::of::<R>())
        else {
            return Err(format!(
                "this job provides no resource of type `{}`: add it to the job (`JobBuilder::\
                 resource`, or `#[job(resources(name = Type))]`), and declare it on the op \
                 (`OpDef::needs`)",
                crate::codec::type_name_of::<R>()
            )
            .into());
        };
        // (one lock for all: a resource is built once, and builds are rare)
        let mut built = self.built.lock().unwrap_or_else(PoisonError::into_inner);
        let resource = match &built[k] {
            Some(resource) => Arc::clone(resource),
            None => {
                let spec = &self.specs[k];
                let ctx = ResourceContext {
                    run_id: self.run_id.clone(),
                    name: spec.name.clone(),
                };
                let config = self.config.get(&spec.name).unwrap_or_else(spec.absent);
                let resource = (spec.build)(config, &ctx).map_err(|e| {
                    Box::new(BuildError {
                        name: spec.name.clone(),
                        source: e,
                    }) as BoxError
                })?;
                built[k] = Some(Arc::clone(&resource));
                resource
            }
        };
        resource.downcast::<R>().map_err(|_| {
            format!(
                "internal error: resource `{}` is not a `{}`",
                self.specs[k].name,
                crate::codec::type_name_of::<R>()
            )
            .into()
        })
    }
}

/// A resource that could not be built; its source is the constructor's error.
#[derive(Debug)]
struct BuildError {
    name: String,
    source: BoxError,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "resource `{}` could not be built", self.name)
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// The resources an op or a graph needs, as types: `()`, [`Needs<R>`], or a tuple of
/// lists (a graph's is the tuple of its nodes' lists).
pub trait ResourceList: 'static {}

/// Resource `R`, needed: an element of a [`ResourceList`].
#[derive(Debug)]
pub struct Needs<R>(std::marker::PhantomData<fn() -> R>);

impl<R: Resource> ResourceList for Needs<R> {}

/// A job that provides resource `R`: `job!` implements it for a type of the job's own, so
/// that an op needing a resource the job lacks is a compile error at the op's call.
#[diagnostic::on_unimplemented(
    message = "this job provides no resource of type `{R}`",
    label = "this op needs a `{R}`",
    note = "add it to the job: `#[job(resources(name = {R}))]`, and give its config at \
            `resources.name.config` in run config"
)]
pub trait Provides<R> {}

/// Checks, at compile time, that job `P` provides every resource in `Self`.
#[doc(hidden)]
pub trait ProvidedBy<P> {}

impl<P, R: Resource> ProvidedBy<P> for Needs<R> where P: Provides<R> {}

macro_rules! impl_resource_list {
    ($($r:ident),*) => {
        impl<$($r: ResourceList),*> ResourceList for ($($r,)*) {}

        impl<P $(, $r: ProvidedBy<P>)*> ProvidedBy<P> for ($($r,)*) {}
    };
}

impl_resource_list!();
impl_resource_list!(A);
impl_resource_list!(A, B);
impl_resource_list!(A, B, C);
impl_resource_list!(A, B, C, D);
impl_resource_list!(A, B, C, D, E);
impl_resource_list!(A, B, C, D, E, F);
impl_resource_list!(A, B, C, D, E, F, G);
impl_resource_list!(A, B, C, D, E, F, G, H);
impl_resource_list!(A, B, C, D, E, F, G, H, I);
impl_resource_list!(A, B, C, D, E, F, G, H, I, J);
impl_resource_list!(A, B, C, D, E, F, G, H, I, J, K);
impl_resource_list!(A, B, C, D, E, F, G, H, I, J, K, L);
