fn generic<T>(x: T) -> T {
    x
}
/// The op `generic`, defined by the function [`generic()`]: add it to a job with `job!`, or with `JobBuilder::add(&<generic as OpDefinition>::definition(), ...)`.
#[allow(non_camel_case_types, dead_code)]
struct generic {}
::core::compile_error! {
    "unknown `#[op]` option `nmae`; the options are `name`, `description`, `tags`, `retries`, `retry_policy`, `max_runtime`, `config`, `out`, `code_version`"
}
::core::compile_error! {
    "ops cannot be generic: each op has fixed input and output types"
}
