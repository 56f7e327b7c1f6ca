// `npm run mock [-- --port N] [-- prism args]`: a Prism mock of the contract on 127.0.0.1, for client teams to build
// against before (or without) the real service. Port: --port, else MOCK_PORT, else 4010. Other arguments go to
// `prism mock` as they are (`-d` for dynamic examples, `--errors`, ...).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from './contract.js';

function splitPort(args: string[]): { port: string; rest: string[] } {
  let port = process.env.MOCK_PORT || '4010';
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--port' || arg === '-p') port = args[++i] ?? port;
    else if (arg.startsWith('--port=')) port = arg.slice('--port='.length);
    else rest.push(arg);
  }
  if (!/^\d+$/.test(port) || Number(port) > 65535) {
    console.error(`Not a port: ${port}. Usage: npm run mock -- [--port N] [prism mock options]`);
    process.exit(2);
  }
  return { port, rest };
}

const { port, rest } = splitPort(process.argv.slice(2));
const prism = spawn(
  join(projectRoot, 'node_modules', '.bin', 'prism'),
  ['mock', 'openapi/webhooks.yaml', '-h', '127.0.0.1', '-p', port, ...rest],
  { cwd: projectRoot, stdio: 'inherit' },
);

// npm and process managers signal only us; Prism must stop with us, not outlive us holding the port.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => prism.kill(signal));
}
prism.on('error', (error) => {
  console.error(`prism could not start: ${error.message}`);
  process.exitCode = 1;
});
prism.on('exit', (code, signal) => {
  process.exitCode = code ?? (signal ? 0 : 1);
});
