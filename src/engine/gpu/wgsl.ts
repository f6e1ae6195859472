// The one preprocessor of the WGSL kernel families: it selects type and feature variants (weight
// formats, subgroups, f16) from a single .wgsl file, which `override` constants cannot do (they
// cannot change a binding's type, an `enable` directive or which functions exist).
//
// Directives are lines whose first non-blank character is '#':
//   #if NAME     #if !NAME      keep what follows while NAME is true (false)
//   #elif NAME   #elif !NAME    the next branch, taken only if no earlier branch was
//   #else                       taken if no earlier branch was
//   #endif
// Blocks nest. NAME must be a key of the defines map: a misspelt name is an error, never a silent
// false. There is no text substitution. Dropped lines (directives included) become empty lines so
// that the WGSL compiler's line numbers still point into the .wgsl file.
import { ShaderCompileError } from '../errors.ts';

export type WgslDefines = Readonly<Record<string, boolean>>;

interface Block {
  /** Line number of the #if, for the unbalanced-block message. */
  line: number;
  /** Whether the enclosing text is kept at all. */
  outerKept: boolean;
  /** Whether some branch of this block has been taken. */
  taken: boolean;
  /** Whether the current branch's lines are kept. */
  kept: boolean;
  sawElse: boolean;
}

export function preprocessWgsl(source: string, defines: WgslDefines, file = 'shader'): string {
  const stack: Block[] = [];
  function fail(line: number, problem: string): never {
    throw new ShaderCompileError(`${file}.wgsl:${line}: ${problem}`);
  }
  function condition(line: number, expression: string): boolean {
    const match = /^(!?)\s*([A-Za-z_][A-Za-z0-9_]*)$/.exec(expression);
    if (!match) fail(line, `expected NAME or !NAME after the directive, got "${expression}"`);
    const value = defines[match[2]];
    if (value === undefined) fail(line, `${match[2]} is not defined (defines: ${Object.keys(defines).join(', ') || 'none'})`);
    return match[1] === '!' ? !value : value;
  }
  const kept = () => stack.length === 0 || stack[stack.length - 1].kept;

  const lines = source.split('\n').map((text, index) => {
    const line = index + 1;
    const directive = /^\s*#\s*(\w+)\s*(.*?)\s*$/.exec(text);
    if (!directive) return kept() ? text : '';
    const [, name, rest] = directive;
    const top = stack[stack.length - 1];
    switch (name) {
      case 'if': {
        const outerKept = kept();
        const value = condition(line, rest);
        stack.push({ line, outerKept, taken: value, kept: outerKept && value, sawElse: false });
        break;
      }
      case 'elif': {
        if (!top) fail(line, '#elif without #if');
        if (top.sawElse) fail(line, '#elif after #else');
        const value = condition(line, rest);
        top.kept = top.outerKept && !top.taken && value;
        top.taken ||= value;
        break;
      }
      case 'else':
        if (!top) fail(line, '#else without #if');
        if (top.sawElse) fail(line, 'a second #else');
        if (rest) fail(line, `#else takes no condition, got "${rest}"`);
        top.sawElse = true;
        top.kept = top.outerKept && !top.taken;
        top.taken = true;
        break;
      case 'endif':
        if (!top) fail(line, '#endif without #if');
        if (rest) fail(line, `#endif takes no condition, got "${rest}"`);
        stack.pop();
        break;
      default:
        fail(line, `unknown directive #${name}`);
    }
    return '';
  });
  if (stack.length > 0) fail(stack[stack.length - 1].line, '#if without #endif');
  return lines.join('\n');
}
