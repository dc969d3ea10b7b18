/**
 * AWS IoT provisioning templates (the JSON `RegisterThing` takes), checked and evaluated by certflow:
 * `Parameters` (String, Number, CommaDelimitedList; defaults; AllowedValues), `Mappings`, `Conditions`, `Resources`
 * of type `AWS::IoT::Thing`, `AWS::IoT::Certificate` and `AWS::IoT::Policy`, the intrinsics `Ref`, `Fn::Join`,
 * `Fn::Sub`, `Fn::FindInMap`, `Fn::Split`, `Fn::Select`, `Fn::If` and the condition functions `Fn::Equals`,
 * `Fn::And`, `Fn::Or`, `Fn::Not` (with `{ "Condition": name }`). certflow also lets a resource `Ref` another
 * (Thing → its name, Certificate → its id, Policy → its name) and orders the resources by those references.
 *
 * `parseTemplate` checks everything that does not depend on parameter values (so an upload is refused early);
 * `instantiate` applies the parameters and resolves one resource at a time in dependency order. Every fault is an
 * InvalidTemplateError whose `details.path` is the JSON path of the fault.
 */
import { InvalidTemplateError } from '../errors';

export type Value = string | number | boolean | Value[] | { [key: string]: Value };
type Json = unknown;

export const RESOURCE_TYPES = ['AWS::IoT::Thing', 'AWS::IoT::Certificate', 'AWS::IoT::Policy'] as const;
export type ResourceType = (typeof RESOURCE_TYPES)[number];
export const PARAMETER_TYPES = ['String', 'Number', 'CommaDelimitedList'] as const;
export type ParameterType = (typeof PARAMETER_TYPES)[number];

/** `Ref` targets every template may use besides its parameters and resources. */
export const PSEUDO_PARAMETERS = ['AWS::NoValue', 'AWS::Region', 'AWS::AccountId'] as const;

const SECTIONS = [
  'AWSTemplateFormatVersion',
  'Description',
  'Parameters',
  'Mappings',
  'Conditions',
  'Resources',
  'CDF',
] as const;

const PROPERTIES: Record<ResourceType, readonly string[]> = {
  'AWS::IoT::Thing': ['ThingName', 'ThingTypeName', 'AttributePayload', 'ThingGroups', 'BillingGroup'],
  'AWS::IoT::Certificate': [
    'CertificateSigningRequest',
    'CertificateId',
    'CertificatePem',
    'CACertificatePem',
    'Status',
  ],
  'AWS::IoT::Policy': ['PolicyName', 'PolicyDocument'],
};
const OVERRIDES: Record<ResourceType, readonly string[]> = {
  'AWS::IoT::Thing': ['AttributePayload', 'ThingTypeName', 'ThingGroups'],
  'AWS::IoT::Certificate': ['Status'],
  'AWS::IoT::Policy': [],
};
const OVERRIDE_VALUES = ['DO_NOTHING', 'REPLACE', 'FAIL', 'MERGE'];
const RESOURCE_KEYS = ['Type', 'Properties', 'Condition', 'OverrideSettings', 'DependsOn'];
const CONDITION_FUNCTIONS = ['Fn::Equals', 'Fn::And', 'Fn::Or', 'Fn::Not'];

export interface ParameterDefinition {
  Type: ParameterType;
  Default?: string | number;
  Description?: string;
  AllowedValues?: (string | number)[];
}

export interface ResourceDefinition {
  Type: ResourceType;
  Properties: Record<string, Json>;
  Condition?: string;
  OverrideSettings?: Record<string, string>;
  DependsOn?: string[];
}

/** A checked template: its sections, resources in an order where every resource follows those it refers to. */
export interface ProvisioningTemplate {
  /** the document as uploaded */
  body: Record<string, Json>;
  parameters: Record<string, ParameterDefinition>;
  mappings: Record<string, Record<string, Record<string, Json>>>;
  conditions: Record<string, Json>;
  resources: Record<string, ResourceDefinition>;
  /** logical ids, dependencies first (declaration order among independent resources) */
  order: string[];
  /** the `CDF` section, unchecked here (see cdf.ts) */
  cdf?: unknown;
  /** why AWS IoT's RegisterThing could not run this template as it is; empty when it could */
  certflowOnly: string[];
}

const fail = (code: string, path: string, message: string): never => {
  throw new InvalidTemplateError(code, path, message);
};

const isObject = (v: unknown): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);
const join = (path: string, key: string | number): string =>
  typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;

/** The intrinsic function of a node (`Ref`, `Fn::…`, `Condition`), or undefined for plain values. */
function intrinsicOf(node: Json, path: string, allowCondition: boolean): string | undefined {
  if (!isObject(node)) return undefined;
  const keys = Object.keys(node);
  const fn = keys.find((k) => k === 'Ref' || k.startsWith('Fn::') || (allowCondition && k === 'Condition'));
  if (fn === undefined) return undefined;
  if (keys.length !== 1) fail('BAD_INTRINSIC', join(path, fn), `${fn} must be the only key of its object`);
  return fn;
}

/** `${Name}` variables of an Fn::Sub string (`${!Literal}` is an escape, not a variable). */
export function subVariables(text: string): string[] {
  return [...text.matchAll(/\$\{([^}]*)\}/g)].map((m) => m[1]!).filter((name) => !name.startsWith('!'));
}

interface Scope {
  parameters: Set<string>;
  resources: Set<string>;
  conditions: Set<string>;
  mappings: Set<string>;
  /** true inside the Conditions section: no resource references, condition functions allowed */
  inConditions: boolean;
}

interface Reference {
  kind: 'resource' | 'condition';
  name: string;
  path: string;
}

/** Checks the shape of every intrinsic under `node` and collects the resources and conditions it refers to. */
function walk(node: Json, path: string, scope: Scope, refs: Reference[], certflowOnly: string[]): void {
  const fn = intrinsicOf(node, path, scope.inConditions);
  if (fn === undefined) {
    if (Array.isArray(node)) node.forEach((item, i) => walk(item, join(path, i), scope, refs, certflowOnly));
    else if (isObject(node))
      for (const [k, v] of Object.entries(node)) walk(v, join(path, k), scope, refs, certflowOnly);
    return;
  }
  const arg = (node as Record<string, Json>)[fn];
  const at = join(path, fn);
  const args = (min: number, max = min): Json[] => {
    if (!Array.isArray(arg) || arg.length < min || arg.length > max) {
      fail('BAD_INTRINSIC', at, `${fn} takes ${min === max ? min : `${min} to ${max}`} arguments in a list`);
    }
    return arg as Json[];
  };
  const nameTarget = (name: string, where: string): void => {
    if ((PSEUDO_PARAMETERS as readonly string[]).includes(name) || scope.parameters.has(name)) return;
    if (scope.resources.has(name)) {
      if (scope.inConditions) fail('BAD_INTRINSIC', where, `a condition cannot refer to the resource ${name}`);
      refs.push({ kind: 'resource', name, path: where });
      certflowOnly.push(`${where}: refers to the resource ${name}`);
      return;
    }
    fail('UNKNOWN_REFERENCE', where, `${name} is not a parameter or resource of the template`);
  };
  switch (fn) {
    case 'Ref':
      if (typeof arg !== 'string') fail('BAD_INTRINSIC', at, 'Ref takes the name of a parameter or resource');
      nameTarget(arg as string, at);
      return;
    case 'Condition':
      if (typeof arg !== 'string') fail('BAD_INTRINSIC', at, 'Condition takes the name of a condition');
      if (!scope.conditions.has(arg as string)) fail('UNKNOWN_CONDITION', at, `no condition ${String(arg)}`);
      refs.push({ kind: 'condition', name: arg as string, path: at });
      return;
    case 'Fn::Join': {
      const [delimiter, list] = args(2);
      if (typeof delimiter !== 'string') fail('BAD_INTRINSIC', join(at, 0), 'the delimiter must be a string');
      if (!Array.isArray(list) && intrinsicOf(list, join(at, 1), false) === undefined) {
        fail('BAD_INTRINSIC', join(at, 1), 'Fn::Join joins a list');
      }
      walk(list, join(at, 1), scope, refs, certflowOnly);
      return;
    }
    case 'Fn::Sub': {
      let text: Json = arg;
      let vars: Record<string, Json> = {};
      if (Array.isArray(arg)) {
        const [t, v] = args(2);
        if (!isObject(v)) fail('BAD_INTRINSIC', join(at, 1), 'the variables of Fn::Sub are an object');
        text = t;
        vars = v as Record<string, Json>;
        for (const [k, value] of Object.entries(vars)) walk(value, join(join(at, 1), k), scope, refs, certflowOnly);
      }
      const textPath = Array.isArray(arg) ? join(at, 0) : at;
      if (typeof text !== 'string') fail('BAD_INTRINSIC', textPath, 'Fn::Sub substitutes into a string');
      for (const name of subVariables(text as string)) {
        if (name in vars) continue;
        if (!/^[A-Za-z0-9:_]+$/.test(name)) fail('BAD_INTRINSIC', textPath, `\${${name}} is not a variable name`);
        nameTarget(name, textPath);
      }
      return;
    }
    case 'Fn::FindInMap': {
      const parts = args(3);
      parts.forEach((p, i) => {
        if (typeof p !== 'string' && intrinsicOf(p, join(at, i), false) === undefined) {
          fail('BAD_INTRINSIC', join(at, i), 'Fn::FindInMap keys are strings');
        }
        walk(p, join(at, i), scope, refs, certflowOnly);
      });
      if (typeof parts[0] === 'string' && !scope.mappings.has(parts[0])) {
        fail('UNKNOWN_MAPPING', join(at, 0), `no mapping ${parts[0]}`);
      }
      return;
    }
    case 'Fn::Split': {
      const [delimiter, source] = args(2);
      if (typeof delimiter !== 'string' || delimiter === '') {
        fail('BAD_INTRINSIC', join(at, 0), 'the delimiter must be a non-empty string');
      }
      walk(source, join(at, 1), scope, refs, certflowOnly);
      return;
    }
    case 'Fn::Select': {
      const [index, list] = args(2);
      const literal = typeof index === 'number' || (typeof index === 'string' && /^\d+$/.test(index));
      if (!literal && intrinsicOf(index, join(at, 0), false) === undefined) {
        fail('BAD_INTRINSIC', join(at, 0), 'the index must be a whole number');
      }
      if (typeof index === 'number' && (!Number.isInteger(index) || index < 0)) {
        fail('BAD_INTRINSIC', join(at, 0), 'the index must be a whole number');
      }
      walk(index, join(at, 0), scope, refs, certflowOnly);
      walk(list, join(at, 1), scope, refs, certflowOnly);
      return;
    }
    case 'Fn::If': {
      const [name, whenTrue, whenFalse] = args(3);
      if (typeof name !== 'string') fail('BAD_INTRINSIC', join(at, 0), 'Fn::If names a condition');
      if (!scope.conditions.has(name as string)) fail('UNKNOWN_CONDITION', join(at, 0), `no condition ${String(name)}`);
      refs.push({ kind: 'condition', name: name as string, path: join(at, 0) });
      walk(whenTrue, join(at, 1), scope, refs, certflowOnly);
      walk(whenFalse, join(at, 2), scope, refs, certflowOnly);
      return;
    }
    case 'Fn::Equals': {
      if (!scope.inConditions) fail('BAD_INTRINSIC', at, 'Fn::Equals belongs in the Conditions section');
      args(2).forEach((v, i) => walk(v, join(at, i), scope, refs, certflowOnly));
      return;
    }
    case 'Fn::And':
    case 'Fn::Or':
    case 'Fn::Not': {
      if (!scope.inConditions) fail('BAD_INTRINSIC', at, `${fn} belongs in the Conditions section`);
      const list = fn === 'Fn::Not' ? args(1) : args(2, 10);
      list.forEach((c, i) => {
        const inner = intrinsicOf(c, join(at, i), true);
        if (inner === undefined || !['Condition', ...CONDITION_FUNCTIONS].includes(inner)) {
          fail('BAD_INTRINSIC', join(at, i), `${fn} combines conditions (Fn::Equals/And/Or/Not or { Condition })`);
        }
        walk(c, join(at, i), scope, refs, certflowOnly);
      });
      return;
    }
    default:
      fail('BAD_INTRINSIC', at, `unknown intrinsic function ${fn}`);
  }
}

/** Fails on a cycle in `edges` (name → references), reported at the reference that closes it. */
function findCycle(names: string[], edges: Map<string, Reference[]>): void {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): void => {
    state.set(name, 'visiting');
    stack.push(name);
    for (const ref of edges.get(name) ?? []) {
      const s = state.get(ref.name);
      if (s === 'visiting') {
        const cycle = [...stack.slice(stack.indexOf(ref.name)), ref.name].join(' → ');
        fail('REFERENCE_CYCLE', ref.path, `reference cycle ${cycle}`);
      }
      if (s === undefined) visit(ref.name);
    }
    stack.pop();
    state.set(name, 'done');
  };
  for (const name of names) if (!state.has(name)) visit(name);
}

function checkParameter(name: string, def: Json): ParameterDefinition {
  const path = join('Parameters', name);
  if (!isObject(def)) return fail('INVALID_PARAMETER_DEFINITION', path, 'a parameter is an object with a Type');
  for (const key of Object.keys(def)) {
    if (!['Type', 'Default', 'Description', 'AllowedValues'].includes(key)) {
      fail('INVALID_PARAMETER_DEFINITION', join(path, key), `unknown parameter attribute ${key}`);
    }
  }
  if (!(PARAMETER_TYPES as readonly Json[]).includes(def.Type)) {
    fail('INVALID_PARAMETER_TYPE', join(path, 'Type'), `Type must be one of ${PARAMETER_TYPES.join(', ')}`);
  }
  if (def.AllowedValues !== undefined) {
    const ok =
      Array.isArray(def.AllowedValues) &&
      def.AllowedValues.length > 0 &&
      def.AllowedValues.every((v) => typeof v === 'string' || typeof v === 'number');
    if (!ok) fail('INVALID_PARAMETER_DEFINITION', join(path, 'AllowedValues'), 'AllowedValues is a list of values');
  }
  const parsed = def as unknown as ParameterDefinition;
  if (def.Default !== undefined) coerceParameter(name, parsed, def.Default, join(path, 'Default'));
  return parsed;
}

/** A parameter value of its declared type (String and Number values are strings, as RegisterThing takes them). */
export function coerceParameter(name: string, def: ParameterDefinition, value: unknown, path: string): Value {
  let result: Value;
  if (def.Type === 'CommaDelimitedList') {
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) result = value as string[];
    else if (typeof value === 'string') result = value === '' ? [] : value.split(',').map((s) => s.trim());
    else return fail('INVALID_PARAMETER', path, `${name} is a comma-delimited list`);
  } else if (def.Type === 'Number') {
    const text = typeof value === 'number' ? String(value) : value;
    if (typeof text !== 'string' || text.trim() === '' || !Number.isFinite(Number(text))) {
      return fail('INVALID_PARAMETER', path, `${name} must be a number`);
    }
    result = text;
  } else {
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      return fail('INVALID_PARAMETER', path, `${name} must be a string`);
    }
    result = String(value);
  }
  if (def.AllowedValues && !def.AllowedValues.map(String).includes(String(result))) {
    fail('INVALID_PARAMETER', path, `${name} must be one of ${def.AllowedValues.join(', ')}`);
  }
  return result;
}

/** Checks a template document: sections, parameters, mappings, conditions, resources, intrinsics, cycles. */
export function parseTemplate(body: unknown): ProvisioningTemplate {
  if (!isObject(body)) return fail('INVALID_TEMPLATE', '(template)', 'a provisioning template is a JSON object');
  for (const key of Object.keys(body)) {
    if (!(SECTIONS as readonly string[]).includes(key)) fail('UNKNOWN_SECTION', key, `unknown template section ${key}`);
  }
  const section = (name: string): Record<string, Json> => {
    const value = body[name] ?? {};
    if (!isObject(value)) fail('INVALID_TEMPLATE', name, `${name} is an object`);
    return value as Record<string, Json>;
  };
  const certflowOnly: string[] = [];

  const parameters: Record<string, ParameterDefinition> = {};
  for (const [name, def] of Object.entries(section('Parameters'))) {
    parameters[name] = checkParameter(name, def);
    if (parameters[name].Type !== 'String') certflowOnly.push(`Parameters.${name}: type ${parameters[name].Type}`);
  }

  const mappings: ProvisioningTemplate['mappings'] = {};
  for (const [name, map] of Object.entries(section('Mappings'))) {
    const path = join('Mappings', name);
    if (!isObject(map)) return fail('INVALID_MAPPING', path, 'a mapping is an object of objects');
    for (const [top, second] of Object.entries(map)) {
      if (!isObject(second)) fail('INVALID_MAPPING', join(path, top), 'a mapping is an object of objects');
      for (const [key, value] of Object.entries(second as Record<string, Json>)) {
        const okValue =
          typeof value === 'string' ||
          typeof value === 'number' ||
          (Array.isArray(value) && value.every((v) => typeof v === 'string'));
        if (!okValue) fail('INVALID_MAPPING', join(join(path, top), key), 'mapping values are strings or lists');
      }
    }
    mappings[name] = map as Record<string, Record<string, Json>>;
  }

  const rawResources = body.Resources;
  if (!isObject(rawResources) || Object.keys(rawResources).length === 0) {
    return fail('INVALID_TEMPLATE', 'Resources', 'a template needs at least one resource');
  }
  const conditions = section('Conditions');
  const scope: Scope = {
    parameters: new Set(Object.keys(parameters)),
    resources: new Set(Object.keys(rawResources)),
    conditions: new Set(Object.keys(conditions)),
    mappings: new Set(Object.keys(mappings)),
    inConditions: true,
  };
  for (const name of scope.resources) {
    if (scope.parameters.has(name)) fail('DUPLICATE_NAME', join('Resources', name), `${name} is also a parameter`);
  }

  const conditionEdges = new Map<string, Reference[]>();
  for (const [name, expr] of Object.entries(conditions)) {
    const path = join('Conditions', name);
    const fn = intrinsicOf(expr, path, true);
    if (fn === undefined || !['Condition', ...CONDITION_FUNCTIONS].includes(fn)) {
      fail('BAD_INTRINSIC', path, 'a condition is Fn::Equals, Fn::And, Fn::Or, Fn::Not or { Condition }');
    }
    const refs: Reference[] = [];
    walk(expr, path, scope, refs, certflowOnly);
    conditionEdges.set(name, refs);
  }
  findCycle(Object.keys(conditions), conditionEdges);

  scope.inConditions = false;
  const resources: Record<string, ResourceDefinition> = {};
  const resourceEdges = new Map<string, Reference[]>();
  const counts: Partial<Record<ResourceType, string>> = {};
  for (const [logicalId, def] of Object.entries(rawResources)) {
    const path = join('Resources', logicalId);
    if (!/^[A-Za-z0-9]+$/.test(logicalId)) fail('INVALID_RESOURCE', path, 'logical ids are alphanumeric');
    if (!isObject(def)) return fail('INVALID_RESOURCE', path, 'a resource is an object with a Type and Properties');
    for (const key of Object.keys(def)) {
      if (!RESOURCE_KEYS.includes(key)) fail('INVALID_RESOURCE', join(path, key), `unknown resource attribute ${key}`);
    }
    const type = def.Type;
    if (!(RESOURCE_TYPES as readonly Json[]).includes(type)) {
      fail(
        'UNKNOWN_RESOURCE_TYPE',
        join(path, 'Type'),
        `unknown resource type ${JSON.stringify(type)} (one of ${RESOURCE_TYPES.join(', ')})`,
      );
    }
    const rtype = type as ResourceType;
    if (rtype !== 'AWS::IoT::Policy') {
      if (counts[rtype]) fail('UNSUPPORTED_TEMPLATE', path, `a template provisions one ${rtype} (${counts[rtype]} is)`);
      counts[rtype] = logicalId;
    }
    const props = def.Properties;
    if (!isObject(props)) return fail('INVALID_RESOURCE', join(path, 'Properties'), 'Properties is an object');
    for (const key of Object.keys(props)) {
      if (!PROPERTIES[rtype].includes(key)) {
        fail('UNKNOWN_PROPERTY', join(join(path, 'Properties'), key), `${rtype} has no property ${key}`);
      }
    }
    const propsPath = join(path, 'Properties');
    if (rtype === 'AWS::IoT::Thing' && props.ThingName === undefined) {
      fail('MISSING_PROPERTY', join(propsPath, 'ThingName'), 'a thing needs a ThingName');
    }
    if (rtype === 'AWS::IoT::Certificate') {
      const sources = ['CertificateSigningRequest', 'CertificateId', 'CertificatePem'].filter((k) => k in props);
      if (sources.length !== 1) {
        fail(
          'INVALID_RESOURCE',
          propsPath,
          'a certificate has exactly one of CertificateSigningRequest, CertificateId, CertificatePem',
        );
      }
      if ('CACertificatePem' in props && !('CertificatePem' in props)) {
        fail('INVALID_RESOURCE', join(propsPath, 'CACertificatePem'), 'CACertificatePem goes with CertificatePem');
      }
    }
    if (rtype === 'AWS::IoT::Policy' && props.PolicyName === undefined && props.PolicyDocument === undefined) {
      fail('MISSING_PROPERTY', propsPath, 'a policy needs a PolicyName or a PolicyDocument');
    }
    if (def.OverrideSettings !== undefined) {
      const overrides = def.OverrideSettings;
      if (!isObject(overrides)) fail('INVALID_RESOURCE', join(path, 'OverrideSettings'), 'an object');
      for (const [key, value] of Object.entries(overrides as Record<string, Json>)) {
        const at = join(join(path, 'OverrideSettings'), key);
        if (!OVERRIDES[rtype].includes(key)) fail('INVALID_RESOURCE', at, `${rtype} has no override for ${key}`);
        if (!OVERRIDE_VALUES.includes(value as string)) fail('INVALID_RESOURCE', at, OVERRIDE_VALUES.join(' | '));
      }
    }
    const refs: Reference[] = [];
    if (def.Condition !== undefined) {
      if (typeof def.Condition !== 'string' || !scope.conditions.has(def.Condition)) {
        fail('UNKNOWN_CONDITION', join(path, 'Condition'), `no condition ${String(def.Condition)}`);
      }
    }
    const dependsOn =
      def.DependsOn === undefined ? [] : typeof def.DependsOn === 'string' ? [def.DependsOn] : def.DependsOn;
    if (!Array.isArray(dependsOn)) return fail('INVALID_RESOURCE', join(path, 'DependsOn'), 'a list of resources');
    dependsOn.forEach((d, i) => {
      const at = typeof def.DependsOn === 'string' ? join(path, 'DependsOn') : join(join(path, 'DependsOn'), i);
      if (typeof d !== 'string' || !scope.resources.has(d)) fail('UNKNOWN_REFERENCE', at, `no resource ${String(d)}`);
      refs.push({ kind: 'resource', name: d as string, path: at });
      certflowOnly.push(`${at}: DependsOn`);
    });
    walk(props, propsPath, scope, refs, certflowOnly);
    resourceEdges.set(
      logicalId,
      refs.filter((r) => r.kind === 'resource'),
    );
    resources[logicalId] = {
      Type: rtype,
      Properties: props,
      ...(def.Condition !== undefined ? { Condition: def.Condition as string } : {}),
      ...(def.OverrideSettings !== undefined
        ? { OverrideSettings: def.OverrideSettings as Record<string, string> }
        : {}),
      ...(dependsOn.length ? { DependsOn: dependsOn as string[] } : {}),
    };
  }
  findCycle(Object.keys(resources), resourceEdges);

  // dependencies first; among resources free to go, the declaration order
  const order: string[] = [];
  const placed = new Set<string>();
  while (order.length < Object.keys(resources).length) {
    const next = Object.keys(resources).find(
      (id) => !placed.has(id) && (resourceEdges.get(id) ?? []).every((r) => placed.has(r.name)),
    )!;
    order.push(next);
    placed.add(next);
  }

  return {
    body,
    parameters,
    mappings,
    conditions,
    resources,
    order,
    ...(body.CDF !== undefined ? { cdf: body.CDF } : {}),
    certflowOnly,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// evaluation

const NO_VALUE = Symbol('AWS::NoValue');
type Evaluated = Value | typeof NO_VALUE;

interface EvalContext {
  template: ProvisioningTemplate;
  values: Record<string, Value>;
  physicalIds: Record<string, string>;
  condition(name: string): boolean;
}

const typeName = (v: Evaluated): string => (v === NO_VALUE ? 'AWS::NoValue' : Array.isArray(v) ? 'list' : typeof v);

function asString(v: Evaluated, path: string, what: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return fail('BAD_INTRINSIC', path, `${what} must be a string, not a ${typeName(v)}`);
}

function asList(v: Evaluated, path: string, what: string): Value[] {
  if (Array.isArray(v)) return v;
  return fail('BAD_INTRINSIC', path, `${what} must be a list, not a ${typeName(v)}`);
}

function lookup(name: string, ctx: EvalContext, path: string): Evaluated {
  if (name === 'AWS::NoValue') return NO_VALUE;
  if (name in ctx.values) return ctx.values[name]!;
  if (name in ctx.template.resources) {
    const id = ctx.physicalIds[name];
    if (id === undefined) fail('UNRESOLVED_REFERENCE', path, `the resource ${name} is not provisioned`);
    return id!;
  }
  return fail('UNKNOWN_REFERENCE', path, `${name} has no value`);
}

function evaluate(node: Json, path: string, ctx: EvalContext): Evaluated {
  const fn = intrinsicOf(node, path, false);
  if (fn === undefined) {
    if (Array.isArray(node)) {
      const out: Value[] = [];
      node.forEach((item, i) => {
        const v = evaluate(item, join(path, i), ctx);
        if (v !== NO_VALUE) out.push(v);
      });
      return out;
    }
    if (isObject(node)) {
      const out: Record<string, Value> = {};
      for (const [k, item] of Object.entries(node)) {
        const v = evaluate(item, join(path, k), ctx);
        if (v !== NO_VALUE) out[k] = v;
      }
      return out;
    }
    if (typeof node === 'string' || typeof node === 'number' || typeof node === 'boolean') return node;
    return fail('BAD_INTRINSIC', path, `null is not a value`);
  }
  const arg = (node as Record<string, Json>)[fn];
  const at = join(path, fn);
  switch (fn) {
    case 'Ref':
      return lookup(arg as string, ctx, at);
    case 'Fn::Join': {
      const [delimiter, list] = arg as [string, Json];
      const items = asList(evaluate(list, join(at, 1), ctx), join(at, 1), 'Fn::Join');
      return items.map((v, i) => asString(v, join(join(at, 1), i), 'a joined value')).join(delimiter);
    }
    case 'Fn::Sub': {
      const [text, vars] = Array.isArray(arg) ? (arg as [string, Record<string, Json>]) : [arg as string, {}];
      const textPath = Array.isArray(arg) ? join(at, 0) : at;
      return text.replace(/\$\{([^}]*)\}/g, (_, name: string) => {
        if (name.startsWith('!')) return `\${${name.slice(1)}}`;
        const value = name in vars ? evaluate(vars[name], join(join(at, 1), name), ctx) : lookup(name, ctx, textPath);
        return asString(value, textPath, `\${${name}}`);
      });
    }
    case 'Fn::FindInMap': {
      const [m, t, s] = (arg as Json[]).map((p, i) => asString(evaluate(p, join(at, i), ctx), join(at, i), 'a key'));
      const map = ctx.template.mappings[m!];
      if (!map) return fail('UNKNOWN_MAPPING', join(at, 0), `no mapping ${m}`);
      const top = map[t!];
      if (!top) return fail('MAPPING_KEY_NOT_FOUND', join(at, 1), `mapping ${m} has no key ${t}`);
      if (!(s! in top)) return fail('MAPPING_KEY_NOT_FOUND', join(at, 2), `mapping ${m}.${t} has no key ${s}`);
      return top[s!] as Value;
    }
    case 'Fn::Split': {
      const [delimiter, source] = arg as [string, Json];
      return asString(evaluate(source, join(at, 1), ctx), join(at, 1), 'Fn::Split source').split(delimiter);
    }
    case 'Fn::Select': {
      const [indexNode, listNode] = arg as [Json, Json];
      const index = Number(asString(evaluate(indexNode, join(at, 0), ctx), join(at, 0), 'the index'));
      const list = asList(evaluate(listNode, join(at, 1), ctx), join(at, 1), 'Fn::Select');
      if (!Number.isInteger(index) || index < 0 || index >= list.length) {
        return fail('BAD_INTRINSIC', join(at, 0), `index ${index} is outside the list (${list.length} items)`);
      }
      return list[index]!;
    }
    case 'Fn::If': {
      const [name, whenTrue, whenFalse] = arg as [string, Json, Json];
      return ctx.condition(name) ? evaluate(whenTrue, join(at, 1), ctx) : evaluate(whenFalse, join(at, 2), ctx);
    }
    default:
      return fail('BAD_INTRINSIC', at, `${fn} cannot be used here`);
  }
}

function evaluateCondition(node: Json, path: string, ctx: EvalContext): boolean {
  const fn = intrinsicOf(node, path, true)!;
  const arg = (node as Record<string, Json>)[fn] as Json[];
  const at = join(path, fn);
  switch (fn) {
    case 'Condition':
      return ctx.condition(arg as unknown as string);
    case 'Fn::Equals': {
      const [a, b] = arg.map((v, i) => evaluate(v, join(at, i), ctx));
      return JSON.stringify(a) === JSON.stringify(b);
    }
    case 'Fn::And':
      return arg.map((c, i) => evaluateCondition(c, join(at, i), ctx)).every(Boolean);
    case 'Fn::Or':
      return arg.map((c, i) => evaluateCondition(c, join(at, i), ctx)).some(Boolean);
    default:
      return !evaluateCondition(arg[0], join(at, 0), ctx);
  }
}

export interface ResolvedThing {
  type: 'AWS::IoT::Thing';
  logicalId: string;
  thingName: string;
  thingTypeName?: string;
  attributes: Record<string, string>;
  thingGroups: string[];
  billingGroup?: string;
  overrideSettings: Record<string, string>;
}

export type CertificateSource =
  | { kind: 'csr'; csr: string }
  | { kind: 'id'; certificateId: string }
  | { kind: 'pem'; certificatePem: string; caCertificatePem?: string };

export interface ResolvedCertificate {
  type: 'AWS::IoT::Certificate';
  logicalId: string;
  source: CertificateSource;
  status: 'ACTIVE' | 'INACTIVE' | 'PENDING_ACTIVATION';
}

export interface ResolvedPolicy {
  type: 'AWS::IoT::Policy';
  logicalId: string;
  policyName?: string;
  /** the policy document as JSON text */
  policyDocument?: string;
}

export type ResolvedResource = ResolvedThing | ResolvedCertificate | ResolvedPolicy;

export const THING_NAME_RE = /^[a-zA-Z0-9:_-]{1,128}$/;
const POLICY_NAME_RE = /^[\w+=,.@-]{1,128}$/;

/** A template with its parameter values: resolves its resources one by one, dependencies first. */
export interface TemplateInstance {
  template: ProvisioningTemplate;
  /** the parameter values (defaults applied), as RegisterThing takes them */
  values: Record<string, Value>;
  /** logical ids to provision, dependencies first (resources whose Condition is false are left out) */
  order: string[];
  /** the resource's properties evaluated; `physicalIds` holds the ids of the resources provisioned before it */
  resolve(logicalId: string, physicalIds: Record<string, string>): ResolvedResource;
}

/**
 * Applies parameter values (`parameters.X`, defaults from the template) to a checked template. Missing parameters
 * without a default fail at `Parameters.X`; values of the wrong type at `parameters.X`.
 */
export function instantiate(
  template: ProvisioningTemplate,
  parameters: Record<string, unknown>,
  pseudo: { region?: string; accountId?: string } = {},
): TemplateInstance {
  const values: Record<string, Value> = {
    'AWS::Region': pseudo.region ?? 'local',
    'AWS::AccountId': pseudo.accountId ?? '000000000000',
  };
  for (const [name, def] of Object.entries(template.parameters)) {
    const given = parameters[name];
    if (given === undefined || given === null) {
      if (def.Default === undefined) {
        fail('MISSING_PARAMETER', join('Parameters', name), `no value given for ${name} and it has no Default`);
      }
      values[name] = coerceParameter(name, def, def.Default, join(join('Parameters', name), 'Default'));
    } else {
      values[name] = coerceParameter(name, def, given, join('parameters', name));
    }
  }
  const memo = new Map<string, boolean>();
  const ctx: EvalContext = {
    template,
    values,
    physicalIds: {},
    condition(name) {
      let value = memo.get(name);
      if (value === undefined) {
        value = evaluateCondition(template.conditions[name], join('Conditions', name), ctx);
        memo.set(name, value);
      }
      return value;
    },
  };
  const order = template.order.filter((id) => {
    const condition = template.resources[id]!.Condition;
    return condition === undefined || ctx.condition(condition);
  });
  // a resource left out by its Condition cannot be referred to by one that is kept
  for (const id of order) {
    for (const dep of template.resources[id]!.DependsOn ?? []) {
      if (!order.includes(dep))
        fail('UNRESOLVED_REFERENCE', join(join('Resources', id), 'DependsOn'), `${dep} is not provisioned`);
    }
  }

  return {
    template,
    values,
    order,
    resolve(logicalId, physicalIds) {
      const def = template.resources[logicalId];
      if (!def) return fail('UNKNOWN_REFERENCE', join('Resources', logicalId), 'no such resource');
      ctx.physicalIds = physicalIds;
      const path = join(join('Resources', logicalId), 'Properties');
      const props = evaluate(def.Properties, path, ctx) as Record<string, Value>;
      const str = (key: string, required = false): string | undefined => {
        const v = props[key];
        if (v === undefined)
          return required ? fail('MISSING_PROPERTY', join(path, key), `${key} is required`) : undefined;
        return asString(v, join(path, key), key);
      };
      switch (def.Type) {
        case 'AWS::IoT::Thing': {
          const thingName = str('ThingName', true)!;
          if (!THING_NAME_RE.test(thingName)) {
            fail(
              'INVALID_PROPERTY',
              join(path, 'ThingName'),
              `${JSON.stringify(thingName)} is not a thing name (1–128 of a-z A-Z 0-9 : _ -)`,
            );
          }
          const attributes: Record<string, string> = {};
          const payload = props.AttributePayload;
          if (payload !== undefined) {
            if (!isObject(payload)) fail('INVALID_PROPERTY', join(path, 'AttributePayload'), 'an object of attributes');
            for (const [k, v] of Object.entries(payload as Record<string, Value>)) {
              attributes[k] = asString(v, join(join(path, 'AttributePayload'), k), `attribute ${k}`);
            }
          }
          const groups =
            props.ThingGroups === undefined ? [] : asList(props.ThingGroups, join(path, 'ThingGroups'), 'ThingGroups');
          const thingTypeName = str('ThingTypeName');
          const billingGroup = str('BillingGroup');
          return {
            type: def.Type,
            logicalId,
            thingName,
            ...(thingTypeName ? { thingTypeName } : {}),
            attributes,
            thingGroups: groups.map((g, i) => asString(g, join(join(path, 'ThingGroups'), i), 'a thing group')),
            ...(billingGroup ? { billingGroup } : {}),
            overrideSettings: def.OverrideSettings ?? {},
          };
        }
        case 'AWS::IoT::Certificate': {
          const status = str('Status') ?? 'ACTIVE';
          if (!['ACTIVE', 'INACTIVE', 'PENDING_ACTIVATION'].includes(status)) {
            fail('INVALID_PROPERTY', join(path, 'Status'), 'ACTIVE | INACTIVE | PENDING_ACTIVATION');
          }
          const csr = str('CertificateSigningRequest');
          const certificateId = str('CertificateId');
          const certificatePem = str('CertificatePem');
          const caCertificatePem = str('CACertificatePem');
          let source: CertificateSource;
          if (csr !== undefined) source = { kind: 'csr', csr };
          else if (certificateId !== undefined) {
            if (!/^[0-9a-f]{64}$/.test(certificateId)) {
              fail('INVALID_PROPERTY', join(path, 'CertificateId'), 'a certificate id is 64 lower-case hex characters');
            }
            source = { kind: 'id', certificateId };
          } else if (certificatePem !== undefined) {
            source = { kind: 'pem', certificatePem, ...(caCertificatePem ? { caCertificatePem } : {}) };
          } else {
            return fail('MISSING_PROPERTY', path, 'the certificate resolved to no CSR, id or PEM');
          }
          return { type: def.Type, logicalId, source, status: status as ResolvedCertificate['status'] };
        }
        default: {
          const policyName = str('PolicyName');
          if (policyName !== undefined && !POLICY_NAME_RE.test(policyName)) {
            fail('INVALID_PROPERTY', join(path, 'PolicyName'), `${JSON.stringify(policyName)} is not a policy name`);
          }
          const doc = props.PolicyDocument;
          let policyDocument: string | undefined;
          if (doc !== undefined) {
            policyDocument = isObject(doc)
              ? JSON.stringify(doc)
              : asString(doc, join(path, 'PolicyDocument'), 'PolicyDocument');
            try {
              if (!isObject(JSON.parse(policyDocument))) throw new Error('not an object');
            } catch {
              fail('INVALID_PROPERTY', join(path, 'PolicyDocument'), 'the policy document is not a JSON object');
            }
          }
          if (policyName === undefined && policyDocument === undefined) {
            fail('MISSING_PROPERTY', path, 'a policy needs a PolicyName or a PolicyDocument');
          }
          return {
            type: 'AWS::IoT::Policy',
            logicalId,
            ...(policyName !== undefined ? { policyName } : {}),
            ...(policyDocument !== undefined ? { policyDocument } : {}),
          };
        }
      }
    },
  };
}
