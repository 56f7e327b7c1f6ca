// The bench's command line refuses bad options with a line and the usage, exit code 2 and no stack trace, before it
// builds or starts anything.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function bench(...args: string[]) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/bench.ts', ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: run.status, stderr: run.stderr, stdout: run.stdout };
}

const stackFrame = /^\s+at .+:\d+:\d+\)?$/m;

describe('npm run bench, given bad options', () => {
  it.each([
    [['--dist'], "Unknown option '--dist' (the service runs from dist/ by default now; --tsx runs the sources)"],
    [['--frobnicate'], "Unknown option '--frobnicate'"],
    [['--rounds'], "Option '--rounds <value>' argument missing"],
    [['--rounds', 'two'], '--rounds must be a positive number, not "two"'],
    [['--only', 'nope'], 'unknown section "nope" in --only'],
    [['--scenarios', 'delete'], 'unknown scenario "delete" in --scenarios'],
  ])('%j: says what is wrong, exits 2, no stack trace', (args, message) => {
    const run = bench(...args);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(`bench: ${message}`);
    expect(run.stderr).not.toMatch(stackFrame);
    expect(run.stdout).toBe('');
  });

  it('prints the usage with --help, and exits 0', () => {
    const run = bench('--help');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('Usage: npm run bench -- [options]');
    expect(run.stdout).toContain('--tsx');
  });
});
