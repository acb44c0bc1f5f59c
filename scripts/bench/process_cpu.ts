/**
 * CPU time of a local process tree from /proc (Linux), read through `cat` (Deno reads
 * /proc itself only with --allow-all): the process's own user + system time, that of its
 * live children, and what its exited children left in its `cutime`/`cstime`. The import
 * benchmark samples the PostgreSQL server's postmaster this way before and after a run,
 * so every backend's and background worker's CPU is counted, even of backends that
 * ended with their connection.
 *
 * @module
 */

/** The fields of /proc/<pid>/stat the benchmark needs (clock ticks). */
export interface ProcStat {
  pid: number;
  ppid: number;
  utime: number;
  stime: number;
  cutime: number;
  cstime: number;
}

/** Parses one /proc/<pid>/stat line (the command name may hold spaces and parentheses). */
export function parseProcStat(line: string): ProcStat {
  const close = line.lastIndexOf(")");
  const pid = Number(line.slice(0, line.indexOf(" ")));
  const rest = line.slice(close + 2).trim().split(/\s+/);
  // rest[0] is field 3 (state): field n is rest[n - 3].
  const field = (n: number) => Number(rest[n - 3]);
  const stat = {
    pid,
    ppid: field(4),
    utime: field(14),
    stime: field(15),
    cutime: field(16),
    cstime: field(17),
  };
  if (close < 0 || Object.values(stat).some((v) => !Number.isSafeInteger(v))) {
    throw new Error(`unreadable /proc stat line: ${line.slice(0, 200)}`);
  }
  return stat;
}

async function cat(paths: string[]): Promise<string> {
  // A child that exited between listing and reading: cat reports it and goes on.
  const output = await new Deno.Command("cat", { args: paths, stdout: "piped", stderr: "null" })
    .output();
  return new TextDecoder().decode(output.stdout);
}

async function ls(dir: string): Promise<string[]> {
  const output = await new Deno.Command("ls", { args: [dir], stdout: "piped", stderr: "null" })
    .output();
  return new TextDecoder().decode(output.stdout).split("\n").filter(Boolean);
}

let ticksPerSecond: number | undefined;

async function clockTicks(): Promise<number> {
  if (ticksPerSecond === undefined) {
    const output = await new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" })
      .output();
    ticksPerSecond = Number(new TextDecoder().decode(output.stdout).trim()) || 100;
  }
  return ticksPerSecond;
}

/**
 * Milliseconds of CPU used so far by `pid`, its live children and its exited, reaped
 * children (one level of children: a postmaster's backends and workers).
 */
export async function processTreeCpuMs(pid: number): Promise<number> {
  const statLine = (await cat([`/proc/${pid}/stat`])).trim();
  if (statLine === "") throw new Error(`no process ${pid}`);
  // Children are listed per thread (a child spawned by another thread is its child).
  const tasks = (await ls(`/proc/${pid}/task`)).map((task) => `/proc/${pid}/task/${task}/children`);
  const children = (await cat(tasks)).trim().split(/\s+/).filter(Boolean);
  const own = parseProcStat(statLine);
  let ticks = own.utime + own.stime + own.cutime + own.cstime;
  if (children.length > 0) {
    const lines = (await cat(children.map((child) => `/proc/${child}/stat`))).trim().split("\n");
    for (const line of lines.filter(Boolean)) {
      const child = parseProcStat(line);
      if (child.ppid === pid) ticks += child.utime + child.stime;
    }
  }
  return ticks * 1000 / await clockTicks();
}

/** The parent of `pid` (a backend's parent is the postmaster). */
export async function parentPid(pid: number): Promise<number> {
  const line = (await cat([`/proc/${pid}/stat`])).trim();
  if (line === "") throw new Error(`no process ${pid}`);
  return parseProcStat(line).ppid;
}
