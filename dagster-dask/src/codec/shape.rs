//! The shape of a stored type: what its bincode bytes mean, traced from its serde
//! implementation, so that a value written by another build of the binary is read only when
//! its type still has that shape.

use std::any::TypeId;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use serde::de::DeserializeOwned;
use serde_reflection::{Tracer, TracerConfig};

/// `T`'s shape as text: its serde format and the formats of the containers it names (field
/// and variant names, in order), or `""` when tracing cannot follow its serde implementation
/// (one that checks what it reads, or reads any value): then only its name is compared.
/// Traced once per type and process.
pub(crate) fn shape_of<T: DeserializeOwned + 'static>() -> Arc<str> {
    static SHAPES: OnceLock<RwLock<HashMap<TypeId, Arc<str>>>> = OnceLock::new();
    let shapes = SHAPES.get_or_init(RwLock::default);
    let id = TypeId::of::<T>();
    if let Some(shape) = shapes
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&id)
    {
        return Arc::clone(shape);
    }
    let shape: Arc<str> = trace::<T>().unwrap_or_default().into();
    let mut shapes = shapes.write().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(shapes.entry(id).or_insert(shape))
}

fn trace<T: DeserializeOwned>() -> Option<String> {
    // (a user's `Deserialize` may panic on the values tracing feeds it: then it is untraced)
    catch_unwind(AssertUnwindSafe(|| {
        let mut tracer = Tracer::new(TracerConfig::default());
        let (format, _) = tracer.trace_simple_type::<T>().ok()?;
        let registry = tracer.registry().ok()?;
        serde_json::to_string(&(format, registry)).ok()
    }))
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Point {
        x: f64,
        y: f64,
    }

    mod moved {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub(super) struct Point {
            x: f64,
            y: f64,
            z: f64,
        }
    }

    #[test]
    fn shapes_tell_changed_fields_apart_and_are_cached() {
        let a = shape_of::<Point>();
        assert!(a.contains("\"x\"") && a.contains("F64"), "{a}");
        assert_ne!(a, shape_of::<moved::Point>());
        assert!(Arc::ptr_eq(&a, &shape_of::<Point>()));
        assert_eq!(&*shape_of::<String>(), r#"["STR",{}]"#);
        // `serde_json::Value` reads any value: it cannot be traced.
        assert_eq!(&*shape_of::<serde_json::Value>(), "");
    }
}
