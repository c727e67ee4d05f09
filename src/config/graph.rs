//! The `depends_on` graph: unknown names, self-dependencies, cycles, and start order.

use super::node::Pos;
use super::reader::{did_you_mean, Ctx};
use super::schema::Config;

/// One `depends_on` entry as written, with its position.
pub(crate) struct Edge {
    pub target: String,
    pub pos: Pos,
    pub path: String,
}

/// Check every service's edges; `names[i]` owns `edges[i]`. Returns false on any problem.
pub(crate) fn check(ctx: &mut Ctx, names: &[String], edges: &[Vec<Edge>]) -> bool {
    let before = ctx.diags.len();
    let by_name: std::collections::HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let index = |n: &str| by_name.get(n).copied();
    // Resolved adjacency, keeping for each edge where it was written.
    let mut adj: Vec<Vec<(usize, Pos)>> = vec![Vec::new(); names.len()];
    for (from, list) in edges.iter().enumerate() {
        for e in list {
            if e.target == names[from] {
                ctx.err(
                    e.pos,
                    format!("{}: service `{}` cannot depend on itself", e.path, e.target),
                );
                continue;
            }
            match index(&e.target) {
                Some(to) => {
                    if adj[from].iter().any(|(t, _)| *t == to) {
                        ctx.err(e.pos, format!("{}: `{}` is listed twice", e.path, e.target));
                    } else {
                        adj[from].push((to, e.pos));
                    }
                }
                None => {
                    let hint = did_you_mean(&e.target, names.iter().map(String::as_str));
                    ctx.err(
                        e.pos,
                        format!("{}: unknown service `{}`{hint}", e.path, e.target),
                    );
                }
            }
        }
    }
    for scc in tarjan(&adj) {
        if scc.len() < 2 {
            continue;
        }
        let cycle = cycle_in(&adj, &scc);
        let text = cycle
            .iter()
            .chain(cycle.first())
            .map(|i| names[*i].as_str())
            .collect::<Vec<_>>()
            .join(" -> ");
        // Report at the edge from the first service of the cycle to the second.
        let (from, to) = (cycle[0], cycle[1 % cycle.len()]);
        let pos = adj[from]
            .iter()
            .find(|(t, _)| *t == to)
            .map_or(Pos { line: 0, column: 0 }, |(_, p)| *p);
        ctx.err(
            pos,
            format!(
                "services.{}.depends_on: dependency cycle {text}",
                names[from]
            ),
        );
    }
    ctx.diags.len() == before
}

/// Strongly connected components (Tarjan), iteratively so deep chains cannot overflow.
fn tarjan(adj: &[Vec<(usize, Pos)>]) -> Vec<Vec<usize>> {
    let n = adj.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut out = Vec::new();
    let mut next = 0;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        // (node, next edge to visit)
        let mut work = vec![(root, 0usize)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut ei)) = work.last_mut() {
            if let Some(&(w, _)) = adj[v].get(*ei) {
                *ei += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                comp.sort_unstable();
                out.push(comp);
            }
        }
    }
    out.sort_by_key(|c| c[0]);
    out
}

/// A concrete cycle through the component's first (in file order) service.
fn cycle_in(adj: &[Vec<(usize, Pos)>], scc: &[usize]) -> Vec<usize> {
    let start = scc[0];
    let mut member = vec![false; adj.len()];
    for &v in scc {
        member[v] = true;
    }
    let inside = |v: usize| member[v];
    // Breadth-first from start gives the shortest way back, which reads best.
    let mut prev = vec![usize::MAX; adj.len()];
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &(w, _) in &adj[v] {
            if w == start {
                let mut path = vec![v];
                let mut cur = v;
                while cur != start {
                    cur = prev[cur];
                    path.push(cur);
                }
                path.reverse();
                return path;
            }
            if inside(w) && prev[w] == usize::MAX {
                prev[w] = v;
                queue.push_back(w);
            }
        }
    }
    scc.to_vec()
}

/// Services in an order that starts every dependency before its dependents; independent
/// services keep file order.
pub fn start_order(config: &Config) -> Vec<String> {
    let names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
    let mut placed = vec![false; names.len()];
    let mut order = Vec::with_capacity(names.len());
    while order.len() < names.len() {
        let ready = config.services.iter().enumerate().find(|(i, s)| {
            !placed[*i]
                && s.depends_on.iter().all(|d| {
                    names
                        .iter()
                        .position(|n| *n == d.service)
                        .is_none_or(|j| placed[j])
                })
        });
        match ready {
            Some((i, s)) => {
                placed[i] = true;
                order.push(s.name.clone());
            }
            // Only reachable with a cycle, which validation rejects; keep file order.
            None => {
                for (i, s) in config.services.iter().enumerate() {
                    if !placed[i] {
                        placed[i] = true;
                        order.push(s.name.clone());
                    }
                }
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(spec: &[&[&str]]) -> Vec<Vec<Edge>> {
        spec.iter()
            .enumerate()
            .map(|(i, list)| {
                list.iter()
                    .enumerate()
                    .map(|(j, t)| Edge {
                        target: t.to_string(),
                        pos: Pos {
                            line: i as u64 + 1,
                            column: j as u64 + 1,
                        },
                        path: format!("s{i}"),
                    })
                    .collect()
            })
            .collect()
    }

    fn run(names: &[&str], spec: &[&[&str]]) -> Vec<(u64, u64, String)> {
        let mut ctx = Ctx::new("/c.yaml".into(), "/".into());
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        check(&mut ctx, &names, &edges(spec));
        ctx.diags
            .into_iter()
            .map(|d| (d.line, d.column, d.message))
            .collect()
    }

    #[test]
    fn clean_graph() {
        assert!(run(&["a", "b", "c"], &[&[], &["a"], &["a", "b"]]).is_empty());
    }

    #[test]
    fn unknown_and_self() {
        let d = run(&["web", "db"], &[&["dbb", "web"], &[]]);
        assert_eq!(d.len(), 2);
        assert!(d[0].2.contains("unknown service `dbb`; did you mean `db`?"));
        assert!(d[1].2.contains("cannot depend on itself"));
        assert_eq!((d[1].0, d[1].1), (1, 2));
    }

    #[test]
    fn cycles_are_named() {
        let d = run(&["a", "b", "c"], &[&["b"], &["c"], &["a"]]);
        assert_eq!(d.len(), 1);
        assert!(d[0].2.contains("a -> b -> c -> a"), "{}", d[0].2);
        assert_eq!((d[0].0, d[0].1), (1, 1));
        let d = run(&["x", "a", "b"], &[&[], &["b"], &["a"]]);
        assert!(d[0].2.contains("a -> b -> a"));
    }

    #[test]
    fn long_chain_does_not_overflow() {
        let names: Vec<String> = (0..20_000).map(|i| format!("s{i}")).collect();
        let mut ctx = Ctx::new("/c.yaml".into(), "/".into());
        let e: Vec<Vec<Edge>> = (0..names.len())
            .map(|i| {
                vec![Edge {
                    target: names[(i + 1) % names.len()].clone(),
                    pos: Pos { line: 1, column: 1 },
                    path: String::new(),
                }]
            })
            .collect();
        assert!(!check(&mut ctx, &names, &e));
        assert_eq!(ctx.diags.len(), 1);
    }
}
