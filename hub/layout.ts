/**
 * @module The hub's layout: the paths that may hold files. Features declare their files as patterns
 * (`"items/*\/*"`, `*` standing for one plain name); a tree entry anywhere else, or of the wrong kind where the
 * layout wants a file or a folder (a symbolic link, a submodule, an executable, a file where a folder belongs or
 * the other way round), is never read nor written to disk — whoever committed it.
 */

export interface TreeEntryKind {
  type: string;
  mode: string;
}

export interface Layout {
  /** Declares the files one pattern names, e.g. `"heartbeats/*"`. */
  add(pattern: string): void;
  /** What the layout expects at `path`: a file, a folder (a prefix of some pattern), or nothing. */
  kindAt(path: string): "file" | "dir" | null;
  /** Why the entry at `path` must not be read, or null when it is what the layout expects there. */
  entryReason(path: string, entry: TreeEntryKind): string | null;
}

/** One plain name: no leading dot, no `..`, no odd characters. */
const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function createLayout(patterns: string[] = []): Layout {
  const list: string[][] = [];
  const layout: Layout = {
    add(pattern) {
      if (!list.some((p) => p.join("/") === pattern)) list.push(pattern.split("/"));
    },
    kindAt(path) {
      const parts = path.split("/");
      if (!parts.every((p) => SEGMENT.test(p) && !p.includes(".."))) return null;
      let dir = false;
      for (const pattern of list) {
        if (parts.length > pattern.length || !parts.every((p, i) => pattern[i] === "*" || pattern[i] === p)) continue;
        if (parts.length === pattern.length) return "file";
        dir = true;
      }
      return dir ? "dir" : null;
    },
    entryReason(path, entry) {
      const kind = layout.kindAt(path);
      if (kind === null) return "it is not a path of the hub's layout";
      const what = _describe(entry);
      if (kind === "dir") return entry.type === "tree" ? null : `${what} where a folder belongs`;
      return entry.type === "blob" && entry.mode === "100644" ? null : `${what} where a regular file belongs`;
    },
  };
  for (const p of patterns) layout.add(p);
  return layout;
}

// --- internal ---

function _describe(entry: TreeEntryKind): string {
  if (entry.type === "tree") return "a folder";
  if (entry.mode === "120000") return "a symbolic link";
  if (entry.mode === "160000" || entry.type === "commit") return "a submodule";
  if (entry.mode === "100755") return "an executable file";
  return entry.mode === "100644" ? "a file" : `an entry of mode ${entry.mode}`;
}
