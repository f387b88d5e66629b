// `portcullis completion bash|zsh|fish`: a completion script generated from the command tree
// itself (every group registered into a scratch program), so new commands complete without edits.
import { Command } from 'commander';
import { CliError, EXIT } from '../client.ts';
import { GROUPS } from '../groups.ts';

/** Each command path ('' for the top level, 'creds issue', …) and the words that may follow it. */
async function tree(): Promise<Map<string, string[]>> {
  const program = new Command('portcullis');
  for (const g of GROUPS) if (!g.names.includes('completion')) (await g.load()).register(program);
  const out = new Map<string, string[]>();
  const walk = (cmd: Command, path: string[]) => {
    const words = [...cmd.commands.map((c) => c.name()), ...cmd.options.flatMap((o) => [o.long, o.short].filter((x): x is string => !!x)), '--help'];
    if (path.length === 0) words.push('completion');
    out.set(path.join(' '), [...new Set(words)].sort());
    for (const c of cmd.commands) walk(c, [...path, c.name()]);
  };
  walk(program, []);
  out.set('completion', ['bash', 'fish', 'zsh']);
  return out;
}

const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

function bash(t: Map<string, string[]>, zsh: boolean): string {
  const cases = [...t]
    .sort(([a], [b]) => b.length - a.length)
    .map(([path, words]) => `    ${q(path)}) words=${q(words.join(' '))} ;;`)
    .join('\n');
  return `${zsh ? '#compdef portcullis\nautoload -U +X bashcompinit && bashcompinit\n' : ''}# portcullis completion (${zsh ? 'zsh' : 'bash'}): eval "$(portcullis completion ${zsh ? 'zsh' : 'bash'})"
_portcullis() {
  local cur path="" w i words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  # The command path: the words before the cursor that name (sub)commands.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in -*) continue ;; esac
    if _portcullis_known "\${path:+$path }$w"; then path="\${path:+$path }$w"; fi
  done
  case "$path" in
${cases}
    *) words="" ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
_portcullis_known() {
  case "$1" in
${[...t.keys()].filter((k) => k !== '').map((k) => `    ${q(k)}) return 0 ;;`).join('\n')}
  esac
  return 1
}
complete -o default -F _portcullis portcullis
`;
}

function fish(t: Map<string, string[]>): string {
  const lines = ['# portcullis completion (fish): portcullis completion fish | source', 'complete -c portcullis -f'];
  for (const [path, words] of t) {
    const subs = words.filter((w) => !w.startsWith('-'));
    const opts = words.filter((w) => w.startsWith('--'));
    const parts = path === '' ? [] : path.split(' ');
    // Offered when exactly this path has been typed: each of its words seen, and no child of it yet.
    const seen = parts.map((p) => `__fish_seen_subcommand_from ${p}`);
    const notChild = subs.length ? [`not __fish_seen_subcommand_from ${subs.join(' ')}`] : [];
    const cond = (path === '' ? ['__fish_use_subcommand'] : [...seen, ...notChild]).join('; and ');
    if (subs.length) lines.push(`complete -c portcullis -n ${q(cond)} -a ${q(subs.join(' '))}`);
    for (const o of opts) lines.push(`complete -c portcullis -n ${q(cond || 'true')} -l ${o.slice(2)}`);
  }
  return `${lines.join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script: eval "$(portcullis completion bash)" (or zsh; fish: portcullis completion fish | source)')
    .argument('<shell>', 'bash, zsh or fish')
    .action(async (shell: string) => {
      const t = await tree();
      if (shell === 'bash' || shell === 'zsh') process.stdout.write(bash(t, shell === 'zsh'));
      else if (shell === 'fish') process.stdout.write(fish(t));
      else throw new CliError(`unknown shell "${shell}": choose bash, zsh or fish`, EXIT.usage);
    });
}
