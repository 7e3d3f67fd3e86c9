/**
 * `muster completion bash|zsh`: a completion script for the shell, made from the commands as
 * this `muster` defines them (their subcommands and options), so it never goes stale against
 * the version installed. Install: `source <(muster completion bash)` in ~/.bashrc, or
 * `source <(muster completion zsh)` in ~/.zshrc (zsh runs the bash function through its
 * bashcompinit; bash 4.2 or later). After an option that takes a value (`--data DIR`), file
 * names are offered.
 */
import type { Command } from 'commander';
import { MusterError } from '../protocol/errors.js';

/** Every command path ("" for `muster` itself, "agents add"): the words that may follow it. */
export interface CompletionTable {
  /** Subcommand names and long options, by command path. */
  readonly words: ReadonlyMap<string, readonly string[]>;
  /** The options that take a value, by command path. */
  readonly valued: ReadonlyMap<string, readonly string[]>;
}

export function completionTable(program: Command): CompletionTable {
  const words = new Map<string, string[]>();
  const valued = new Map<string, string[]>();
  const visit = (command: Command, path: string): void => {
    const subcommands = command.commands.map((c) => c.name());
    const options = command.options.flatMap((o) => (o.long === undefined ? [] : [o.long]));
    words.set(path, [...subcommands, ...options, '--help']);
    valued.set(
      path,
      command.options.flatMap((o) =>
        o.long !== undefined && (o.required || o.optional) ? [o.long] : [],
      ),
    );
    for (const sub of command.commands)
      visit(sub, path === '' ? sub.name() : `${path} ${sub.name()}`);
  };
  visit(program, '');
  return { words, valued };
}

/** The key of `muster` itself: bash refuses an empty subscript. */
const ROOT_KEY = '.';

/** A bash associative array's entries: ["path"]="w1 w2". */
function entries(map: ReadonlyMap<string, readonly string[]>): string {
  return [...map]
    .map(
      ([path, list]) =>
        `  [${JSON.stringify(path === '' ? ROOT_KEY : path)}]=${JSON.stringify(list.join(' '))}`,
    )
    .join('\n');
}

export function bashCompletion(table: CompletionTable): string {
  return `# muster completion for bash (muster completion bash); zsh: muster completion zsh
declare -gA _muster_words=(
${entries(table.words)}
)
declare -gA _muster_valued=(
${entries(table.valued)}
)
_muster() {
  # zsh's bashcompinit hands over COMP_WORDS as a zsh array: it counts from 1.
  local base=0
  [[ -n "\${ZSH_VERSION-}" && ! -o ksharrays ]] && base=1
  local cur="\${COMP_WORDS[COMP_CWORD+base]}" prev="" path="${ROOT_KEY}" word next i
  (( COMP_CWORD > 0 )) && prev="\${COMP_WORDS[COMP_CWORD-1+base]}"
  for (( i = 1; i < COMP_CWORD; i++ )); do
    word="\${COMP_WORDS[i+base]}"
    [[ "$word" == -* ]] && continue
    if [[ "$path" == "${ROOT_KEY}" ]]; then next="$word"; else next="$path $word"; fi
    [[ -n "\${_muster_words[$next]+x}" ]] && path="$next"
  done
  if [[ "$prev" == --* && " \${_muster_valued[$path]} " == *" $prev "* ]]; then
    local IFS=$'\n'
    COMPREPLY=( $(compgen -f -- "$cur") )
    return 0
  fi
  COMPREPLY=( $(compgen -W "\${_muster_words[$path]}" -- "$cur") )
}
complete -o default -o filenames -F _muster muster
`;
}

export function zshCompletion(table: CompletionTable): string {
  return `# muster completion for zsh (muster completion zsh): the bash function through bashcompinit
(( $+functions[compdef] )) || { autoload -U compinit && compinit; }
autoload -U +X bashcompinit && bashcompinit
${bashCompletion(table).split('\n').slice(1).join('\n')}`;
}

export function registerCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script: source <(muster completion bash) (or zsh)')
    .argument('<shell>', 'bash or zsh')
    .action((shell: string) => {
      const table = completionTable(program);
      if (shell === 'bash') process.stdout.write(bashCompletion(table));
      else if (shell === 'zsh') process.stdout.write(zshCompletion(table));
      else throw new MusterError('VALIDATION_FAILED', `no completion for ${shell}: bash or zsh`);
    });
}
