// Summaries of V8 .cpuprofile files (written by `node --cpu-prof`): the top functions by self time and the share
// of each package / area. Also a CLI: `npx tsx scripts/bench/profile.ts FILE.cpuprofile [TOP]`.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { projectRoot } from './processes.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  function: string;
  location: string;
  area: string;
  selfMs: number;
  /** Share of the busy (non-idle) time. */
  selfPct: number;
  /** Self time per request served in the window, when the request count is known. */
  usPerRequest?: number;
}

export interface ProfileWindow {
  /** Only samples taken in [fromUs, toUs] count: process.hrtime microseconds (the profile's clock, CLOCK_MONOTONIC). */
  fromUs?: number;
  toUs?: number;
  /** Requests the process served in the window: adds µs per request. */
  requests?: number;
}

export interface ProfileSummary {
  file: string;
  requests?: number;
  /** Busy time per request, µs. */
  busyUsPerRequest?: number;
  totalMs: number;
  idleMs: number;
  busyMs: number;
  top: FunctionTime[];
  areas: { area: string; selfMs: number; selfPct: number; usPerRequest?: number }[];
}

function location(frame: CallFrame): string {
  if (!frame.url) return '';
  let path = frame.url;
  if (path.startsWith('file://')) {
    try {
      path = relative(projectRoot, fileURLToPath(path));
    } catch {
      // keep the URL
    }
  }
  return `${path}:${frame.lineNumber + 1}`;
}

/** Where a function lives: a package, the project's own code, Node's internals, or V8's pseudo-frames. */
function areaOf(frame: CallFrame): string {
  const url = frame.url;
  if (!url) {
    if (frame.functionName.startsWith('(')) return frame.functionName; // (garbage collector), (program), (idle)
    return '(native)';
  }
  if (url.startsWith('node:')) return 'node: internals';
  const packages = /node_modules\/((?:@[^/]+\/)?[^/]+)/g;
  let last: string | undefined;
  for (let match = packages.exec(url); match; match = packages.exec(url)) last = match[1];
  if (last) return last;
  const path = url.startsWith('file://') ? relative(projectRoot, fileURLToPath(url)) : url;
  // The service from dist/ counts under the same areas as its sources (server/store, server/http, …).
  const top = path.replace(/^dist\//, '').split('/').slice(0, 2).join('/');
  return top || path;
}

export function summarizeProfile(file: string, topN = 15, window: ProfileWindow = {}): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  const from = window.fromUs ?? -Infinity;
  const to = window.toUs ?? Infinity;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    // A sample stands for the time since the previous one.
    if (at >= from && at <= to) selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  });

  const functions = new Map<string, { frame: CallFrame; us: number }>();
  const areas = new Map<string, number>();
  let idleUs = 0;
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    totalUs += us;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const key = `${frame.functionName}|${frame.url}|${frame.lineNumber}|${frame.columnNumber}`;
    const entry = functions.get(key) ?? { frame, us: 0 };
    entry.us += us;
    functions.set(key, entry);
    const area = areaOf(frame);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const pct = (us: number) => Math.round((us / busyUs) * 1000) / 10;
  const ms = (us: number) => Math.round(us / 100) / 10;
  const requests = window.requests;
  const perRequest = (us: number) => (requests ? { usPerRequest: Math.round((us / requests) * 10) / 10 } : {});
  return {
    file: relative(projectRoot, file),
    ...(requests ? { requests, busyUsPerRequest: Math.round((busyUs / requests) * 10) / 10 } : {}),
    totalMs: ms(totalUs),
    idleMs: ms(idleUs),
    busyMs: ms(busyUs),
    top: [...functions.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, topN)
      .map(({ frame, us }) => ({
        function: frame.functionName || '(anonymous)',
        location: location(frame),
        area: areaOf(frame),
        selfMs: ms(us),
        selfPct: pct(us),
        ...perRequest(us),
      })),
    areas: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([area, us]) => ({ area, selfMs: ms(us), selfPct: pct(us), ...perRequest(us) })),
  };
}

/** The main thread's profile in a --cpu-prof-dir (the largest file: loader threads write small ones). */
export function mainProfileIn(dir: string): string | undefined {
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => join(dir, name));
  return files.sort((a, b) => statSync(b).size - statSync(a).size)[0];
}

export function formatProfile(summary: ProfileSummary, title: string): string {
  const perRequest = summary.requests
    ? `, ${summary.requests} requests, ${summary.busyUsPerRequest} µs busy per request`
    : '';
  const lines = [
    `${title}: ${summary.busyMs} ms busy of ${summary.totalMs} ms sampled${perRequest} (${summary.file})`,
    '  self%   self ms   µs/req  function  (location)',
    ...summary.top.map(
      (f) =>
        `  ${f.selfPct.toFixed(1).padStart(5)}  ${f.selfMs.toFixed(1).padStart(8)}  ` +
        `${(f.usPerRequest?.toFixed(1) ?? '').padStart(7)}  ${f.function}  (${f.location || f.area})`,
    ),
    '  by area: ' +
      summary.areas.map((a) => `${a.area} ${a.selfPct}%${a.usPerRequest !== undefined ? ` (${a.usPerRequest} µs/req)` : ''}`).join(', '),
  ];
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: tsx scripts/bench/profile.ts FILE.cpuprofile [TOP]');
    process.exit(2);
  }
  console.log(formatProfile(summarizeProfile(file, Number(top ?? 25)), file));
}
