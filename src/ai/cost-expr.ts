/**
 * ai-rate-limiting's `cost_expr`: the arithmetic subset of Lua APISIX evaluates (numbers, usage field
 * names, + - * / % ^, parentheses, and abs/ceil/floor/max/min, also as math.*), compiled once into a
 * closure. Nothing else can be named, so an expression can never reach anything but the usage figures.
 * Unknown names are 0, as in APISIX.
 */
export type CostExpr = (vars: Readonly<Record<string, number>>) => number;

type Token = { kind: "num"; value: number } | { kind: "id"; name: string } | { kind: "op"; op: string };

const FUNCTIONS: Record<string, (...args: number[]) => number> = {
  abs: Math.abs,
  ceil: Math.ceil,
  floor: Math.floor,
  max: Math.max,
  min: Math.min,
};

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === " " || c === "\t" || c === "\n") {
      i++;
      continue;
    }
    const num = /^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/.exec(src.slice(i));
    if (num !== null) {
      out.push({ kind: "num", value: Number(num[0]) });
      i += num[0].length;
      continue;
    }
    const id = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?/.exec(src.slice(i));
    if (id !== null) {
      out.push({ kind: "id", name: id[0] });
      i += id[0].length;
      continue;
    }
    if ("+-*/%^(),".includes(c)) {
      out.push({ kind: "op", op: c });
      i++;
      continue;
    }
    throw new Error(`unexpected character "${c}" at position ${i + 1}`);
  }
  return out;
}

/** Compiles `source`; throws an Error whose message says what is wrong. */
export function compileCostExpr(source: string): CostExpr {
  const tokens = tokenize(source);
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const isOp = (op: string): boolean => {
    const t = tokens[pos];
    return t?.kind === "op" && t.op === op;
  };
  const expect = (op: string): void => {
    if (!isOp(op)) throw new Error(`expected "${op}" at token ${pos + 1}`);
    pos++;
  };

  // Lua precedence: + - < * / % < unary - < ^ (right associative).
  const additive = (): CostExpr => {
    let left = multiplicative();
    while (isOp("+") || isOp("-")) {
      const op = (tokens[pos++] as { op: string }).op;
      const l = left;
      const r = multiplicative();
      left = op === "+" ? (v) => l(v) + r(v) : (v) => l(v) - r(v);
    }
    return left;
  };
  const multiplicative = (): CostExpr => {
    let left = unary();
    while (isOp("*") || isOp("/") || isOp("%")) {
      const op = (tokens[pos++] as { op: string }).op;
      const l = left;
      const r = unary();
      left =
        op === "*"
          ? (v) => l(v) * r(v)
          : op === "/"
            ? (v) => l(v) / r(v)
            : (v) => {
                const b = r(v);
                return l(v) - Math.floor(l(v) / b) * b;
              };
    }
    return left;
  };
  const unary = (): CostExpr => {
    if (isOp("-")) {
      pos++;
      const inner = unary();
      return (v) => -inner(v);
    }
    return power();
  };
  const power = (): CostExpr => {
    const base = primary();
    if (!isOp("^")) return base;
    pos++;
    const exponent = unary();
    return (v) => base(v) ** exponent(v);
  };
  const primary = (): CostExpr => {
    const t = peek();
    if (t === undefined) throw new Error("unexpected end of expression");
    pos++;
    if (t.kind === "num") return () => t.value;
    if (t.kind === "op") {
      if (t.op !== "(") throw new Error(`unexpected "${t.op}"`);
      const inner = additive();
      expect(")");
      return inner;
    }
    const fname = t.name.startsWith("math.") ? t.name.slice(5) : t.name;
    if (isOp("(")) {
      const fn = FUNCTIONS[fname];
      if (fn === undefined) throw new Error(`unknown function ${t.name}`);
      pos++;
      const args: CostExpr[] = [];
      if (!isOp(")")) {
        args.push(additive());
        while (isOp(",")) {
          pos++;
          args.push(additive());
        }
      }
      expect(")");
      return (v) => fn(...args.map((a) => a(v)));
    }
    if (t.name.includes(".")) throw new Error(`unknown name ${t.name}`);
    const name = t.name;
    return (v) => v[name] ?? 0;
  };

  const expr = additive();
  if (pos !== tokens.length) throw new Error(`unexpected token ${pos + 1} after the expression`);
  return expr;
}
