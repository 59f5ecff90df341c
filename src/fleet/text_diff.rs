//! Line diffs in the unified format (`-` removed, `+` added, three lines of
//! context, `@@ -a,n +b,m @@` hunk headers), for `gslb diff A B` between
//! two published versions' TOML and files.
//!
//! Myers' O((N+M)·D) algorithm on what is left after the common head and
//! tail; when more than [`MAX_EDITS`] lines differ the file is reported as
//! replaced whole rather than spending quadratic memory on it. Pure.

/// Most differing lines diffed line by line.
pub const MAX_EDITS: usize = 4000;
/// Lines of context around each change.
const CONTEXT: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep,
    Remove,
    Add,
}

/// The unified diff of `old` and `new` (empty when equal), labelled with
/// `old_name` and `new_name`.
pub fn unified(old_name: &str, new_name: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    let Some(ops) = edit_script(&a, &b) else {
        out.push_str(&format!(
            "@@ -1,{} +1,{} @@ (more than {MAX_EDITS} lines differ: replaced whole)\n",
            a.len(),
            b.len()
        ));
        return out;
    };
    // Positions (old, new) of each op.
    let mut positions = Vec::with_capacity(ops.len());
    let (mut i, mut j) = (0usize, 0usize);
    for op in &ops {
        positions.push((i, j));
        match op {
            Op::Keep => {
                i += 1;
                j += 1;
            }
            Op::Remove => i += 1,
            Op::Add => j += 1,
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k] != Op::Keep).collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT + 1 {
            end = changed[k];
            k += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let (old_start, new_start) = positions[start];
        let old_count = ops[start..end].iter().filter(|o| **o != Op::Add).count();
        let new_count = ops[start..end].iter().filter(|o| **o != Op::Remove).count();
        out.push_str(&format!(
            "@@ -{},{old_count} +{},{new_count} @@\n",
            old_start + usize::from(old_count > 0),
            new_start + usize::from(new_count > 0)
        ));
        for index in start..end {
            let (i, j) = positions[index];
            match ops[index] {
                Op::Keep => out.push_str(&format!(" {}\n", a[i])),
                Op::Remove => out.push_str(&format!("-{}\n", a[i])),
                Op::Add => out.push_str(&format!("+{}\n", b[j])),
            }
        }
    }
    out
}

/// The shortest edit script turning `a` into `b`, or `None` when more than
/// [`MAX_EDITS`] lines differ.
fn edit_script(a: &[&str], b: &[&str]) -> Option<Vec<Op>> {
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut ops = vec![Op::Keep; head];
    ops.extend(myers(ma, mb)?);
    ops.extend(std::iter::repeat_n(Op::Keep, tail));
    Some(ops)
}

fn myers(a: &[&str], b: &[&str]) -> Option<Vec<Op>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max = (n + m) as usize;
    if max == 0 {
        return Some(Vec::new());
    }
    let limit = max.min(MAX_EDITS);
    let offset = limit as isize + 1;
    let mut v = vec![0isize; 2 * limit + 3];
    let mut trace: Vec<Vec<isize>> = Vec::new();
    let mut found = None;
    'outer: for d in 0..=limit as isize {
        trace.push(v.clone());
        let mut k = -d;
        while k <= d {
            let index = (k + offset) as usize;
            let mut x = if k == -d || (k != d && v[index - 1] < v[index + 1]) {
                v[index + 1]
            } else {
                v[index - 1] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[index] = x;
            if x >= n && y >= m {
                found = Some(d);
                break 'outer;
            }
            k += 2;
        }
    }
    let d_final = found?;
    // Walk back through the saved frontiers.
    let mut ops = Vec::new();
    let (mut x, mut y) = (n, m);
    for d in (1..=d_final).rev() {
        let v = &trace[d as usize];
        let k = x - y;
        let index = (k + offset) as usize;
        let down = k == -d || (k != d && v[index - 1] < v[index + 1]);
        let prev_k = if down { k + 1 } else { k - 1 };
        let prev_x = v[(prev_k + offset) as usize];
        let prev_y = prev_x - prev_k;
        while x > prev_x && y > prev_y {
            ops.push(Op::Keep);
            x -= 1;
            y -= 1;
        }
        if down {
            ops.push(Op::Add);
        } else {
            ops.push(Op::Remove);
        }
        x = prev_x;
        y = prev_y;
    }
    while x > 0 && y > 0 {
        ops.push(Op::Keep);
        x -= 1;
        y -= 1;
    }
    ops.reverse();
    Some(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies a unified diff's lines back to rebuild `new` from `old`.
    fn check_script(a: &str, b: &str) {
        let av: Vec<&str> = a.lines().collect();
        let bv: Vec<&str> = b.lines().collect();
        let ops = edit_script(&av, &bv).unwrap();
        let (mut i, mut j) = (0, 0);
        let mut rebuilt = Vec::new();
        for op in ops {
            match op {
                Op::Keep => {
                    assert_eq!(av[i], bv[j]);
                    rebuilt.push(av[i]);
                    i += 1;
                    j += 1;
                }
                Op::Remove => i += 1,
                Op::Add => {
                    rebuilt.push(bv[j]);
                    j += 1;
                }
            }
        }
        assert_eq!((i, j), (av.len(), bv.len()));
        assert_eq!(rebuilt, bv);
    }

    #[test]
    fn scripts_rebuild_the_new_text() {
        let cases = [
            ("a\nb\nc\n", "a\nc\n"),
            ("", "x\ny\n"),
            ("x\ny\n", ""),
            ("a\nb\nc\nd\ne\n", "b\nc\nX\ne\nf\n"),
            (
                "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n",
                "1\n2\n3\nfour\n5\n6\n7\n8\n9\nten\n",
            ),
        ];
        for (a, b) in cases {
            check_script(a, b);
            check_script(b, a);
        }
    }

    #[test]
    fn unified_output_has_hunks_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n";
        let new = "1\n2\n3\n4\n5\nsix\n7\n8\n9\n10\n11\n12\n";
        let diff = unified("a", "b", old, new);
        assert_eq!(
            diff,
            "--- a\n+++ b\n@@ -3,7 +3,7 @@\n 3\n 4\n 5\n-6\n+six\n 7\n 8\n 9\n"
        );
        assert_eq!(unified("a", "b", old, old), "");
    }
}
