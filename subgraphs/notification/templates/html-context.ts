import { NODE, type AstNode } from './ast.js';

/**
 * Where each variable lands in an HTML template. Escaping makes a value safe in text and in a
 * quoted attribute, and nowhere else: in an unquoted attribute a space starts a new attribute,
 * in an event handler or <style> escaped text is still code, and in href a value can be a
 * `javascript:` URL that no escaping disarms. So a template may only place variables in text
 * and in quoted attributes that are not code; a variable that starts a URL attribute is a link
 * and must be an http(s) URL when rendered.
 */
export interface HtmlAnalysis {
  problems: string[];
  /** Variables that open a URL attribute (href="{inviteLink}"). */
  linkVariables: Set<string>;
}

/** Attributes whose value is fetched or followed as a URL (HTML's URL-valued attributes that email can carry). */
const URL_ATTRIBUTES = new Set(['href', 'src', 'srcset', 'action', 'formaction', 'background', 'poster', 'cite', 'longdesc', 'usemap', 'xlink:href']);
/**
 * Raw-text elements: their content is not markup, and entities are not decoded, so an escaped
 * value there is still CSS (or never shown). <title> and <textarea> decode entities, so they
 * are text to us.
 */
const RAW_TEXT = new Set(['style', 'xmp', 'iframe', 'noembed', 'noframes']);

type Mode =
  | 'data' | 'tagOpen' | 'tagName' | 'endTag' | 'beforeAttr' | 'attrName' | 'afterAttrName' | 'beforeValue'
  | 'valueDq' | 'valueSq' | 'valueUnquoted' | 'rawText' | 'markup' | 'comment';

interface State {
  mode: Mode;
  tag: string;
  attr: string;
  /** The attribute's value so far; a variable in it counts as one character. */
  value: string;
  /** The raw-text element's closing tag we wait for, and what we read since it opened. */
  rawEnd: string;
  buffer: string;
}

export function analyzeHtml(ast: readonly AstNode[]): HtmlAnalysis {
  const result: HtmlAnalysis = { problems: [], linkVariables: new Set() };
  const end = walk(ast, initialState(), result);
  if (end.mode !== 'data') result.problems.push('the HTML ends inside a tag, an attribute or a comment');
  return result;
}

const initialState = (): State => ({ mode: 'data', tag: '', attr: '', value: '', rawEnd: '', buffer: '' });

function walk(ast: readonly AstNode[], start: State, result: HtmlAnalysis): State {
  let state = start;
  for (const node of ast) {
    if (node.type === NODE.literal) {
      state = advance(state, node.value ?? '', result);
    } else if (node.type === NODE.select || node.type === NODE.plural) {
      // Each branch starts where the element is; they must all leave the markup in the same
      // place, or what follows would be checked against a state only some branches reach.
      const ends = Object.values(node.options ?? {}).map((option) => walk(option.value, { ...state }, result));
      if (ends.some((e) => e.mode !== ends[0]!.mode || e.tag !== ends[0]!.tag)) {
        result.problems.push(`the branches of {${node.value}} do not all close the markup they open`);
      }
      state = ends[0] ?? state;
    } else if (node.type === NODE.pound) {
      // A formatted number: no markup in it, but it still fills an attribute value.
      state = placeValue(state, '#', result, false);
    } else {
      state = placeValue(state, node.value ?? '', result, true);
    }
  }
  return state;
}

/** A value lands at the current position: allowed, a link, or a problem. */
function placeValue(state: State, name: string, result: HtmlAnalysis, named: boolean): State {
  const where = `{${name}}`;
  switch (state.mode) {
    case 'data':
      return state;
    case 'valueDq':
    case 'valueSq': {
      const attr = state.attr.toLowerCase();
      if (attr.startsWith('on') || attr === 'style' || attr === 'srcdoc') {
        result.problems.push(`${where} is inside the ${attr} attribute, which is code: escaping does not make a value safe there`);
      } else if (URL_ATTRIBUTES.has(attr)) {
        if (state.value.trim() === '') {
          if (named) result.linkVariables.add(name);
          else result.problems.push(`a number cannot start the ${attr} attribute`);
        } else if (!/[:/?#]/.test(state.value)) {
          // "java{x}" would let x finish a scheme; once ':', '/', '?' or '#' is fixed, it cannot.
          result.problems.push(`${where} in ${attr} follows text that does not fix the URL's scheme or path`);
        }
      }
      return { ...state, value: `${state.value}\u0000` };
    }
    case 'beforeValue':
    case 'valueUnquoted':
      result.problems.push(`${where} is in the unquoted ${state.attr} attribute: quote the attribute's value`);
      return state;
    case 'rawText':
      result.problems.push(`${where} is inside <${state.tag}>, whose content is not markup`);
      return state;
    case 'comment':
    case 'markup':
      result.problems.push(`${where} is inside an HTML comment or declaration`);
      return state;
    default:
      result.problems.push(`${where} is inside a tag, outside any quoted attribute value`);
      return state;
  }
}

/** Reads literal markup: a small subset of the HTML tokenizer, enough to know where a value lands. */
function advance(start: State, text: string, result: HtmlAnalysis): State {
  const s = { ...start };
  for (const ch of text) {
    const space = /\s/.test(ch);
    switch (s.mode) {
      case 'data':
        if (ch === '<') s.mode = 'tagOpen';
        break;
      case 'tagOpen':
        if (/[A-Za-z]/.test(ch)) Object.assign(s, { mode: 'tagName', tag: ch.toLowerCase() });
        else if (ch === '/') s.mode = 'endTag';
        else if (ch === '!') Object.assign(s, { mode: 'markup', buffer: '' });
        else s.mode = 'data'; // "a < b": a lone '<' is text
        break;
      case 'tagName':
        if (space || ch === '/') s.mode = 'beforeAttr';
        else if (ch === '>') closeTag(s, result);
        else s.tag += ch.toLowerCase();
        break;
      case 'endTag':
        if (ch === '>') s.mode = 'data';
        break;
      case 'beforeAttr':
        if (ch === '>') closeTag(s, result);
        else if (!space && ch !== '/') Object.assign(s, { mode: 'attrName', attr: ch });
        break;
      case 'attrName':
        if (space) s.mode = 'afterAttrName';
        else if (ch === '=') s.mode = 'beforeValue';
        else if (ch === '>') closeTag(s, result);
        else s.attr += ch;
        break;
      case 'afterAttrName':
        if (ch === '=') s.mode = 'beforeValue';
        else if (ch === '>') closeTag(s, result);
        else if (!space && ch !== '/') Object.assign(s, { mode: 'attrName', attr: ch });
        break;
      case 'beforeValue':
        if (ch === '"') Object.assign(s, { mode: 'valueDq', value: '' });
        else if (ch === "'") Object.assign(s, { mode: 'valueSq', value: '' });
        else if (ch === '>') closeTag(s, result);
        else if (!space) Object.assign(s, { mode: 'valueUnquoted', value: ch });
        break;
      case 'valueDq':
      case 'valueSq':
        if (ch === (s.mode === 'valueDq' ? '"' : "'")) s.mode = 'beforeAttr';
        else s.value += ch;
        break;
      case 'valueUnquoted':
        if (space) s.mode = 'beforeAttr';
        else if (ch === '>') closeTag(s, result);
        else s.value += ch;
        break;
      case 'rawText':
        s.buffer += ch;
        if (s.buffer.toLowerCase().endsWith(s.rawEnd)) s.mode = 'endTag';
        break;
      case 'markup':
        s.buffer += ch;
        if (s.buffer === '--') Object.assign(s, { mode: 'comment', buffer: '' });
        else if (ch === '>') s.mode = 'data';
        break;
      case 'comment':
        s.buffer += ch;
        if (s.buffer.endsWith('-->')) s.mode = 'data';
        break;
    }
  }
  return s;
}

function closeTag(s: State, result: HtmlAnalysis) {
  if (s.tag === 'script') {
    result.problems.push('<script> has no place in an email');
    Object.assign(s, { mode: 'rawText', rawEnd: '</script', buffer: '' });
  } else if (RAW_TEXT.has(s.tag)) {
    Object.assign(s, { mode: 'rawText', rawEnd: `</${s.tag}`, buffer: '' });
  } else {
    s.mode = 'data';
  }
}
