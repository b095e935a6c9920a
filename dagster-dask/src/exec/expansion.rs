//! How a run's dynamic part unfolds: the recipe, read from the plan once, by which the run's
//! state turns each mapped step of the plan (a template) into one step per mapping key when
//! the dynamic output it is mapped over has been stored.
//!
//! One [`Part`] per dynamic output: the templates mapped over it, in plan order (a chain's
//! links after their upstream), each with where its inputs come from; and the steps that
//! collect it, which wait for every step made for it.

use crate::plan::{Fan, Plan, PlanSource};

/// Where one upstream of a template's step comes from, for a given mapping key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    /// The step that stored the dynamic output.
    Producer,
    /// A step of the plan (by index), the same for every key.
    Step(usize),
    /// The step made for the same key from another template of the part (by position).
    Template(usize),
}

/// A mapped step of the plan and the steps made from it.
#[derive(Debug)]
pub(crate) struct Template {
    /// Its index in the plan.
    pub(crate) plan: usize,
    pub(crate) upstream: Vec<Upstream>,
    /// The run state's index of the step made for each mapping key, in key order; `None`
    /// for a key whose step an earlier run finished (a re-execution).
    pub(crate) made: Vec<Option<usize>>,
}

/// One dynamic output of the plan and everything that follows its keys.
#[derive(Debug)]
pub(crate) struct Part {
    /// The dynamic output.
    pub(crate) root: PlanSource,
    /// The plan index of its step, and the output's position; `None` when another run stored
    /// it (a selection's parent).
    pub(crate) producer: Option<(usize, usize)>,
    pub(crate) templates: Vec<Template>,
    /// Steps of the plan that collect it, each with the templates (by position) whose steps
    /// it reads (none: it reads the dynamic output's items).
    pub(crate) collectors: Vec<(usize, Vec<usize>)>,
}

/// Every dynamic part of a plan.
#[derive(Debug, Default)]
pub(crate) struct Expansions {
    pub(crate) parts: Vec<Part>,
    /// Every dynamic output of the plan, (step, output position), expanded or not.
    outputs: Vec<(usize, usize)>,
}

impl Expansions {
    /// The recipe of `plan`'s dynamic parts (none for most plans).
    pub(crate) fn new(plan: &Plan) -> Self {
        let mut parts: Vec<Part> = Vec::new();
        let part_of = |parts: &mut Vec<Part>, root: &PlanSource| -> usize {
            if let Some(p) = parts.iter().position(|p| same(&p.root, root)) {
                return p;
            }
            let producer = match root.run {
                Some(_) => None,
                None => plan.index_of(&root.step).and_then(|u| {
                    let k = plan.steps[u]
                        .outputs
                        .iter()
                        .position(|o| o.name == root.output)?;
                    Some((u, k))
                }),
            };
            parts.push(Part {
                root: root.clone(),
                producer,
                templates: Vec::new(),
                collectors: Vec::new(),
            });
            parts.len() - 1
        };
        for (i, step) in plan.steps.iter().enumerate() {
            if let Some(root) = &step.mapped {
                let p = part_of(&mut parts, root);
                let mut upstream = Vec::new();
                for input in &step.inputs {
                    for source in input.sources.iter() {
                        let up = match input.fan {
                            Fan::Each if same(source, root) => Upstream::Producer,
                            Fan::Each => {
                                let Some(t) = parts[p]
                                    .templates
                                    .iter()
                                    .position(|t| plan.steps[t.plan].key == source.step)
                                else {
                                    // (a template of another run: its outputs are stored)
                                    continue;
                                };
                                Upstream::Template(t)
                            }
                            _ if source.run.is_some() => continue,
                            _ => match plan.index_of(&source.step) {
                                Some(u) => Upstream::Step(u),
                                None => continue,
                            },
                        };
                        if !upstream.contains(&up) {
                            upstream.push(up);
                        }
                    }
                }
                parts[p].templates.push(Template {
                    plan: i,
                    upstream,
                    made: Vec::new(),
                });
                continue;
            }
            for input in step.inputs.iter().filter(|input| input.fan == Fan::All) {
                let Some(root) = &input.root else { continue };
                let p = part_of(&mut parts, root);
                let reads: Vec<usize> = input
                    .sources
                    .iter()
                    .filter_map(|source| {
                        parts[p]
                            .templates
                            .iter()
                            .position(|t| plan.steps[t.plan].key == source.step)
                    })
                    .collect();
                match parts[p].collectors.iter_mut().find(|(c, _)| *c == i) {
                    Some((_, all)) => all.extend(reads),
                    None => parts[p].collectors.push((i, reads)),
                }
            }
        }
        let outputs = plan
            .steps
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.outputs
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| o.dynamic)
                    .map(move |(k, _)| (i, k))
            })
            .collect();
        Self { parts, outputs }
    }

    /// The positions of the dynamic outputs of plan step `step`.
    pub(crate) fn dynamic_outputs(&self, step: usize) -> Vec<usize> {
        self.outputs
            .iter()
            .filter(|(s, _)| *s == step)
            .map(|(_, k)| *k)
            .collect()
    }

    /// The part of dynamic output `output` (position) of plan step `step`.
    pub(crate) fn produced_by(&self, step: usize, output: usize) -> Option<usize> {
        self.parts
            .iter()
            .position(|p| p.producer == Some((step, output)))
    }

    /// The parts whose dynamic output another run stored: their keys come from there.
    pub(crate) fn external(&self) -> impl Iterator<Item = (usize, &PlanSource)> {
        self.parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.producer.is_none())
            .map(|(i, p)| (i, &p.root))
    }

    /// The distinct parts that plan step `step` collects.
    pub(crate) fn collected_by(&self, step: usize) -> usize {
        self.parts
            .iter()
            .filter(|p| p.collectors.iter().any(|(c, _)| *c == step))
            .count()
    }
}

/// The same output of the same step (of the same run).
fn same(a: &PlanSource, b: &PlanSource) -> bool {
    a.step == b.step && a.output == b.output
}
