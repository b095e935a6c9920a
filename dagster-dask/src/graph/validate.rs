//! Validating a whole graph at once, and freezing it into a [`Job`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};

use super::builder::{InputsDecl, JobBuilder, StepDecl};
use super::error::{GraphError, GraphProblem};
use super::job::{Job, JobStep, StepInput};
use crate::op::TypeInfo;
use crate::plan::{Fan, Plan, PlanInput, PlanOutput, PlanSource, PlanStep};

/// One input of a step being built: its sources by declaration index, and how to read it.
pub(super) struct ResolvedInput {
    /// (step, output) of each upstream output, steps by declaration index.
    sources: Vec<(usize, usize)>,
    decode: crate::op::DecodeFn,
    collect: Option<super::handle::CollectFn>,
    from_config: Option<super::handle::FromJsonFn>,
    fan: Fan,
    /// For a per-key input: the dynamic output (step, output) whose keys it follows.
    root: Option<(usize, usize)>,
    /// The wiring asks for the value of the step's own mapping key.
    each: bool,
}

impl JobBuilder {
    /// Validates the whole graph and freezes it into a [`Job`].
    pub fn build(self) -> Result<Job, GraphError> {
        let mut problems = Vec::new();
        if !is_valid_name(&self.name) {
            problems.push(GraphProblem::InvalidName {
                what: "job",
                name: self.name.clone(),
            });
        }

        let mut index: HashMap<&str, usize> = HashMap::with_capacity(self.steps.len());
        let mut reported_dup = HashSet::new();
        for (i, step) in self.steps.iter().enumerate() {
            // (`graph.op` inside a graph instance: each part a name)
            if !step.key.split('.').all(is_valid_name) {
                problems.push(GraphProblem::InvalidName {
                    what: "step",
                    name: step.key.clone(),
                });
            }
            if index.insert(&step.key, i).is_some() && reported_dup.insert(step.key.as_str()) {
                let ops = self
                    .steps
                    .iter()
                    .filter(|s| s.key == step.key)
                    .map(|s| s.spec.name.clone())
                    .collect();
                problems.push(GraphProblem::DuplicateStep {
                    step: step.key.clone(),
                    ops,
                });
            }
        }
        let max_runtime = crate::op::MAX_RUNTIME_TAG;
        let tagged = std::iter::once((format!("job `{}`", self.name), self.tags.get(max_runtime)))
            .chain(self.steps.iter().map(|s| {
                (
                    format!("step `{}`", s.key),
                    s.spec.tags.values.get(max_runtime),
                )
            }));
        for (owner, value) in tagged {
            if let Some(Err(problem)) = value.map(|v| crate::op::parse_max_runtime(v)) {
                problems.push(GraphProblem::InvalidTag {
                    owner,
                    key: max_runtime.to_owned(),
                    problem,
                });
            }
        }
        self.check_resources(&mut problems);
        // (a valid resources tag became resource requirements: one left is invalid)
        let resources = crate::op::RESOURCES_TAG;
        for s in &self.steps {
            if let Some(Err(problem)) = s
                .spec
                .tags
                .values
                .get(resources)
                .map(|v| crate::op::parse_resource_requirements(v))
            {
                problems.push(GraphProblem::InvalidTag {
                    owner: format!("step `{}`", s.key),
                    key: resources.to_owned(),
                    problem: format!(
                        "{problem}; or use `OpDef::resource(\"GPU\", 1.0)` \
                         (`tags(resource_requirements(GPU = 1))` in `#[op]`)"
                    ),
                });
            }
        }
        // Duplicates resolve to the first step of that name: the error is reported above.
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            first.entry(&step.key).or_insert(i);
        }

        let mut resolved: Vec<Vec<ResolvedInput>> = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            resolved.push(self.resolve_inputs(step, &first, &mut problems));
        }
        let mapped = self.resolve_dynamic(&mut resolved, &mut problems);

        let mut graph: DiGraph<usize, ()> =
            DiGraph::with_capacity(self.steps.len(), self.steps.len());
        let nodes: Vec<NodeIndex> = (0..self.steps.len()).map(|i| graph.add_node(i)).collect();
        for (i, inputs) in resolved.iter().enumerate() {
            // Each upstream step once. (`update_edge` dedups by scanning the upstream's edges
            // for every new one: quadratic in a fan-out, and every step process of a big job
            // builds its graph.)
            let mut sources: Vec<usize> = inputs
                .iter()
                .flat_map(|input| input.sources.iter().map(|&(step, _)| step))
                .collect();
            sources.sort_unstable();
            sources.dedup();
            for src in sources {
                graph.add_edge(nodes[src], nodes[i], ());
            }
        }
        let order = topological_order(&graph, &nodes);
        if order.len() < nodes.len() {
            // Kahn's order stops short exactly when there are cycles; name each one.
            // (Kosaraju is iterative: deep graphs do not overflow the stack.)
            let mut cycles: Vec<Vec<String>> = petgraph::algo::kosaraju_scc(&graph)
                .into_iter()
                .filter(|scc| scc.len() > 1 || graph.contains_edge(scc[0], scc[0]))
                .map(|scc| {
                    cycle_path(&graph, &scc)
                        .iter()
                        .map(|&n| self.steps[graph[n]].key.clone())
                        .collect()
                })
                .collect();
            cycles.sort();
            problems.extend(
                cycles
                    .into_iter()
                    .map(|steps| GraphProblem::Cycle { steps }),
            );
        }

        if !problems.is_empty() {
            problems.sort_by_key(GraphProblem::order);
            return Err(GraphError {
                job: self.name,
                problems,
            });
        }

        let mut plan_steps = Vec::with_capacity(order.len());
        let mut job_steps = Vec::with_capacity(order.len());
        for &i in &order {
            let decl = &self.steps[i];
            let spec = &decl.spec;
            let inputs = std::mem::take(&mut resolved[i]);
            plan_steps.push(PlanStep {
                key: decl.key.clone(),
                op: spec.name.clone(),
                description: spec.description.clone(),
                inputs: inputs
                    .iter()
                    .enumerate()
                    .map(|(k, input)| PlanInput {
                        name: spec.input_names[k].to_owned(),
                        type_name: spec.input_types[k].name().to_owned(),
                        sources: input
                            .sources
                            .iter()
                            .map(|&source| self.plan_source(source))
                            .collect(),
                        fan_in: input.collect.is_some(),
                        from_config: input.from_config.is_some(),
                        fan: input.fan,
                        root: input.root.map(|r| self.plan_source(r)),
                    })
                    .collect(),
                outputs: spec
                    .outputs
                    .iter()
                    .map(|o| PlanOutput {
                        name: o.name.clone(),
                        type_name: o.type_info.name().to_owned(),
                        optional: o.optional,
                        dynamic: o.dynamic,
                    })
                    .collect(),
                tags: spec.tags.clone(),
                resources: spec
                    .resources
                    .iter()
                    .filter_map(|need| {
                        let r = self.resources.iter().find(|r| r.type_id == need.type_id)?;
                        Some(r.name.clone())
                    })
                    .collect(),
                retry_policy: spec.retry_policy,
                code_version: spec.code_version.clone(),
                config_type: spec.config.map(|c| c.type_name.to_owned()),
                mapped: mapped[i].map(|r| self.plan_source(r)),
            });
            // (where each input comes from is the plan's: its sources)
            job_steps.push(JobStep {
                spec: Arc::clone(spec),
                inputs: inputs
                    .into_iter()
                    .map(|input| StepInput {
                        decode: input.decode,
                        collect: input.collect,
                        from_config: input.from_config,
                    })
                    .collect(),
            });
        }
        let resources: BTreeMap<String, String> = self
            .resources
            .iter()
            .map(|r| (r.name.clone(), r.type_name.to_owned()))
            .collect();
        let mut plan = Plan::new(self.name, self.description, self.tags, plan_steps);
        plan.resources = resources;
        Ok(Job {
            plan,
            steps: job_steps,
            resources: self.resources,
        })
    }

    /// Output `k` of step `s` (declaration indices) as the plan names it.
    fn plan_source(&self, (s, k): (usize, usize)) -> PlanSource {
        PlanSource {
            step: self.steps[s].key.clone(),
            output: self.steps[s].spec.outputs[k].name.clone(),
            run: None,
        }
    }

    /// How each input reads a dynamic part of the job, and the dynamic output each step is
    /// mapped over (by declaration index), in declaration order: typed handles only point
    /// back, so a step's upstream steps are decided before it.
    fn resolve_dynamic(
        &self,
        resolved: &mut [Vec<ResolvedInput>],
        problems: &mut Vec<GraphProblem>,
    ) -> Vec<Option<(usize, usize)>> {
        let mut mapped: Vec<Option<(usize, usize)>> = vec![None; self.steps.len()];
        let by_name: Vec<bool> = self
            .steps
            .iter()
            .map(|s| matches!(s.inputs, InputsDecl::ByName(_)))
            .collect();
        // By name, an upstream step may come later: its mapping is known after the loop.
        let mut named: Vec<(usize, usize, usize)> = Vec::new();
        for i in 0..self.steps.len() {
            let step = &self.steps[i];
            for (k, input) in resolved[i].iter_mut().enumerate() {
                let name = step.spec.input_names.get(k).copied().unwrap_or("?");
                let [(src, out)] = input.sources[..] else {
                    for &(src, out) in &input.sources {
                        if by_name[i] {
                            named.push((i, src, out));
                        } else if self.steps[src].spec.outputs[out].dynamic || mapped[src].is_some()
                        {
                            problems.push(GraphProblem::Dynamic {
                                step: step.key.clone(),
                                problem: format!(
                                    "input `{name}` lists `{}` with other handles: a value per mapping \
                                     key is read with `.map(op)` or `.collect()`",
                                    self.steps[src].key
                                ),
                            });
                        }
                    }
                    continue;
                };
                if by_name[i] {
                    named.push((i, src, out));
                    continue;
                }
                let root = if self.steps[src].spec.outputs[out].dynamic {
                    Some((src, out))
                } else {
                    mapped[src]
                };
                input.root = root;
                let dynamic_output = self.steps[src].spec.outputs[out].dynamic;
                input.fan = match (root, input.each, input.collect.is_some()) {
                    (None, _, _) => Fan::One,
                    (Some(_), true, _) => Fan::Each,
                    (Some(_), false, true) => Fan::All,
                    // (inside a map's body: a mapped step's output feeds the next per key)
                    (Some(_), false, false) if !dynamic_output => Fan::Each,
                    (Some(_), false, false) => {
                        problems.push(GraphProblem::Dynamic {
                            step: step.key.clone(),
                            problem: format!(
                                "input `{name}` reads `{}`, which has one value per mapping key: \
                                 map the op over it (`.map(op)`) or collect it (`.collect()`)",
                                self.steps[src].key
                            ),
                        });
                        Fan::One
                    }
                };
                if input.fan == Fan::Each {
                    if mapped[i].is_some_and(|m| Some(m) != root) {
                        problems.push(GraphProblem::Dynamic {
                            step: step.key.clone(),
                            problem: "it is mapped over two dynamic outputs: map over one, and \
                             collect the other"
                                .to_owned(),
                        });
                    }
                    mapped[i] = root;
                }
            }
            if mapped[i].is_some() && step.spec.outputs.iter().any(|o| o.dynamic) {
                problems.push(GraphProblem::Dynamic {
                    step: step.key.clone(),
                    problem: "a mapped step cannot have a dynamic output (nested dynamic \
                     outputs): collect the first one before fanning out again"
                        .to_owned(),
                });
            }
        }
        for &i in &self.map_results {
            if mapped.get(i).is_some_and(Option::is_none) {
                problems.push(GraphProblem::Dynamic {
                    step: self.steps[i].key.clone(),
                    problem: "a map's body returns it, but it takes no value per mapping key: \
                              pass the body's per-key value to it (or to a step before it)"
                        .to_owned(),
                });
            }
        }
        for (i, src, out) in named {
            if self.steps[src].spec.outputs[out].dynamic || mapped[src].is_some() {
                problems.push(GraphProblem::Dynamic {
                    step: self.steps[i].key.clone(),
                    problem: format!(
                        "it is wired by name to `{}`, which has one value per mapping key: wire \
                         it with typed handles, `JobBuilder::map` or `.collect()`",
                        self.steps[src].key
                    ),
                });
            }
        }
        mapped
    }

    fn resolve_inputs(
        &self,
        step: &StepDecl,
        first: &HashMap<&str, usize>,
        problems: &mut Vec<GraphProblem>,
    ) -> Vec<ResolvedInput> {
        let spec = &step.spec;
        let mut out = Vec::with_capacity(spec.input_names.len());
        match &step.inputs {
            InputsDecl::Typed(wirings) => {
                for (k, wiring) in wirings.iter().enumerate() {
                    let input = spec.input_names.get(k).copied().unwrap_or("?");
                    if spec.input_types.get(k) != Some(&wiring.input_type) {
                        problems.push(GraphProblem::TypeMismatch {
                            step: step.key.clone(),
                            input: input.to_owned(),
                            expected: spec.input_types.get(k).map_or("?", |t| t.name()).to_owned(),
                            upstream: "(handle)".to_owned(),
                            found: wiring.input_type.name().to_owned(),
                        });
                    }
                    let mut sources = Vec::with_capacity(wiring.sources.len());
                    for &(builder, src, output) in &wiring.sources {
                        let known = builder == self.id
                            && self
                                .steps
                                .get(src)
                                .is_some_and(|s| output < s.spec.outputs.len());
                        if !known {
                            problems.push(GraphProblem::ForeignHandle {
                                step: step.key.clone(),
                                input: input.to_owned(),
                            });
                            continue;
                        }
                        let source = (src, output);
                        self.check_source_type(step, input, source, wiring.source_type, problems);
                        sources.push(source);
                    }
                    out.push(ResolvedInput {
                        sources,
                        decode: wiring.decode,
                        collect: wiring.collect,
                        from_config: wiring.from_config,
                        fan: Fan::One,
                        root: None,
                        each: wiring.each,
                    });
                }
            }
            InputsDecl::ByName(wired) => {
                for (name, _) in wired {
                    if !spec.input_names.contains(&name.as_str()) {
                        problems.push(GraphProblem::UnknownInput {
                            step: step.key.clone(),
                            op: spec.name.clone(),
                            input: name.clone(),
                            known: spec.input_names.iter().map(|s| (*s).to_owned()).collect(),
                        });
                    }
                }
                for (k, input) in spec.input_names.iter().enumerate() {
                    let mut sources = Vec::new();
                    match wired.iter().find(|(name, _)| name == input) {
                        None => problems.push(GraphProblem::MissingInput {
                            step: step.key.clone(),
                            input: (*input).to_owned(),
                            type_name: spec.input_types[k].name().to_owned(),
                        }),
                        Some((_, upstreams)) if upstreams.len() > 1 => {
                            problems.push(GraphProblem::FanInByName {
                                step: step.key.clone(),
                                input: (*input).to_owned(),
                                upstreams: upstreams.clone(),
                            });
                        }
                        Some((_, upstreams)) => {
                            let upstream = &upstreams[0];
                            match self.output_by_name(upstream, first) {
                                Err(outputs) => problems.push(GraphProblem::DanglingInput {
                                    step: step.key.clone(),
                                    input: (*input).to_owned(),
                                    upstream: upstream.clone(),
                                    outputs,
                                }),
                                Ok(source) => {
                                    self.check_source_type(
                                        step,
                                        input,
                                        source,
                                        spec.input_types[k],
                                        problems,
                                    );
                                    sources.push(source);
                                }
                            }
                        }
                    }
                    out.push(ResolvedInput {
                        sources,
                        decode: spec.input_decoders[k],
                        collect: None,
                        from_config: None,
                        fan: Fan::One,
                        root: None,
                        each: false,
                    });
                }
            }
        }
        out
    }

    /// Resource names (valid, not reserved, each once, one per type) and every step's needs.
    fn check_resources(&self, problems: &mut Vec<GraphProblem>) {
        let reserved: Vec<&str> = crate::config::reserved_resource_names().collect();
        for (k, r) in self.resources.iter().enumerate() {
            let earlier = &self.resources[..k];
            let problem = if !is_valid_name(&r.name) {
                Some("a resource name may use only letters, digits and `_`".to_owned())
            } else if reserved.contains(&r.name.as_str()) {
                Some(format!(
                    "the name is taken: `resources.{}` configures the storage; pick another",
                    r.name
                ))
            } else if earlier.iter().any(|e| e.name == r.name) {
                Some("two resources have this name".to_owned())
            } else {
                earlier.iter().find(|e| e.type_id == r.type_id).map(|e| {
                    format!(
                        "resource `{}` is a `{}` already: ops ask for a resource by type, so a \
                         job provides each type once",
                        e.name, r.type_name
                    )
                })
            };
            if let Some(problem) = problem {
                problems.push(GraphProblem::InvalidResource {
                    name: r.name.clone(),
                    problem,
                });
            }
        }
        for step in &self.steps {
            for need in &step.spec.resources {
                if !self.resources.iter().any(|r| r.type_id == need.type_id) {
                    problems.push(GraphProblem::MissingResource {
                        step: step.key.clone(),
                        resource: need.type_name.to_owned(),
                    });
                }
            }
        }
    }

    /// The output that `name` (a step key, or `step.output`) names; else the outputs of the
    /// step it names, when it names one with several (an empty list: no such step).
    fn output_by_name(
        &self,
        name: &str,
        first: &HashMap<&str, usize>,
    ) -> Result<(usize, usize), Vec<String>> {
        let names = |i: usize| -> Vec<String> {
            let step = &self.steps[i];
            step.spec
                .outputs
                .iter()
                .map(|o| format!("{}.{}", step.key, o.name))
                .collect()
        };
        if let Some(&i) = first.get(name) {
            return match self.steps[i].spec.outputs.len() {
                1 => Ok((i, 0)),
                _ => Err(names(i)),
            };
        }
        let Some((step, output)) = name.rsplit_once('.') else {
            return Err(Vec::new());
        };
        let Some(&i) = first.get(step) else {
            return Err(Vec::new());
        };
        match self.steps[i]
            .spec
            .outputs
            .iter()
            .position(|o| o.name == output)
        {
            Some(k) => Ok((i, k)),
            None => Err(names(i)),
        }
    }

    fn check_source_type(
        &self,
        step: &StepDecl,
        input: &str,
        (src, output): (usize, usize),
        expected: TypeInfo,
        problems: &mut Vec<GraphProblem>,
    ) {
        let upstream = &self.steps[src];
        let found = upstream.spec.outputs[output].type_info;
        if found != expected {
            let name = &upstream.spec.outputs[output].name;
            problems.push(GraphProblem::TypeMismatch {
                step: step.key.clone(),
                input: input.to_owned(),
                expected: expected.name().to_owned(),
                upstream: if upstream.spec.outputs.len() == 1 {
                    upstream.key.clone()
                } else {
                    format!("{}.{name}", upstream.key)
                },
                found: found.name().to_owned(),
            });
        }
    }
}

/// Step and job names: Dagster's rule, so names work as paths and Dask keys.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Kahn's algorithm, preferring declaration order among ready steps, so plans are stable.
fn topological_order(graph: &DiGraph<usize, ()>, nodes: &[NodeIndex]) -> Vec<usize> {
    let mut indegree: Vec<usize> = nodes
        .iter()
        .map(|&n| {
            graph
                .neighbors_directed(n, petgraph::Direction::Incoming)
                .count()
        })
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> = indegree
        .iter()
        .enumerate()
        .filter(|(_, d)| **d == 0)
        .map(|(i, _)| Reverse(i))
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for next in graph.neighbors_directed(nodes[i], petgraph::Direction::Outgoing) {
            let j = graph[next];
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    order
}

/// One cycle through the strongly connected component `scc`, starting at its first step.
fn cycle_path(graph: &DiGraph<usize, ()>, scc: &[NodeIndex]) -> Vec<NodeIndex> {
    let members: HashSet<NodeIndex> = scc.iter().copied().collect();
    let start = *scc.iter().min_by_key(|n| graph[**n]).unwrap_or(&scc[0]);
    // Depth-first search for a path back to `start` inside the component.
    let mut path = vec![start];
    let mut seen = HashSet::from([start]);
    let mut stack = vec![graph.neighbors(start).collect::<Vec<_>>()];
    while let Some(frontier) = stack.last_mut() {
        match frontier.pop() {
            Some(n) if n == start => return path,
            Some(n) if members.contains(&n) && seen.insert(n) => {
                path.push(n);
                stack.push(graph.neighbors(n).collect());
            }
            Some(_) => {}
            None => {
                stack.pop();
                path.pop();
            }
        }
    }
    scc.to_vec()
}
