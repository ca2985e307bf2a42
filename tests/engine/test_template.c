// SPDX-License-Identifier: MIT
// Unit tests for the chat-template interpreter: each construct in isolation
// (expected outputs are what Jinja2 3.1 renders for the same template and
// variables, with trim_blocks/lstrip_blocks as marked), error cases with line
// numbers, chat rendering details, limits, and random/mutated templates that
// must never crash.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chat_template.h"
#include "json.h"
#include "mesh_err.h"

typedef struct {
    const char *tmpl;
    const char *vars; // JSON object
    int hf;           // 1: trim_blocks + lstrip_blocks (transformers), 0: Jinja defaults
    const char *want;
} s_case_t;

static const s_case_t s_cases[] = {
    {"Hello {{ name }}!",
     "{\"name\": \"world\"}", 0,
     "Hello world!"},
    {"{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 7 / 2 }}|{{ 2 ** 10 }}",
     "{}", 0,
     "7|9|3|-4|1|2|3.5|1024"},
    {"{{ 1.5 + 1 }}|{{ 0.1 + 0.2 }}|{{ 1e20 }}|{{ 1e-7 }}|{{ 3.0 }}|{{ 10 / 4 }}",
     "{}", 0,
     "2.5|0.30000000000000004|1e+20|1e-07|3.0|2.5"},
    {"{{ 'a' + 'b' }}|{{ 'a' ~ 1 ~ none ~ true }}|{{ 'ab' * 3 }}|{{ [1] + [2, 3] }}",
     "{}", 0,
     "ab|a1NoneTrue|ababab|[1, 2, 3]"},
    {"{{ x }}|{{ x is defined }}|{{ x is undefined }}|{{ x.y }}|{{ x['y'] }}|{{ not x }}",
     "{}", 0,
     "|False|True|||True"},
    {"{{ none }}|{{ None }}|{{ true }}|{{ True }}|{{ false }}|{{ False }}",
     "{}", 0,
     "None|None|True|True|False|False"},
    {"{{ [1, 'a', none, true, 1.5, {'k': 'v'}] }}",
     "{}", 0,
     "[1, 'a', None, True, 1.5, {'k': 'v'}]"},
    {"{{ {'a': 1, 'b': [1, 2]} }}|{{ d }}",
     "{\"d\": {\"x\": \"it's\", \"y\": \"say \\\"hi\\\"\"}}", 0,
     "{'a': 1, 'b': [1, 2]}|{'x': \"it's\", 'y': 'say \"hi\"'}"},
    {"{{ s[0] }}{{ s[-1] }}|{{ s[1:] }}|{{ s[:2] }}|{{ s[::-1] }}|{{ s[1:4:2] }}|{{ s[-2:] }}|{{ s[5] }}",
     "{\"s\": \"h\303\251llo\"}", 0,
     "ho|\303\251llo|h\303\251|oll\303\251h|\303\251l|lo|"},
    {"{{ l[0] }}|{{ l[-1] }}|{{ l[1:] }}|{{ l[::-1] }}|{{ l[::2] }}|{{ l[10:] }}|{{ l[-10:1] }}",
     "{\"l\": [1, 2, 3, 4, 5]}", 0,
     "1|5|[2, 3, 4, 5]|[5, 4, 3, 2, 1]|[1, 3, 5]|[]|[1]"},
    {"{{ a.b }}|{{ a['b'] }}|{{ a.c.d }}|{{ a.missing }}|{{ a.l.0 }}",
     "{\"a\": {\"b\": \"B\", \"c\": {\"d\": 4}, \"l\": [9]}}", 0,
     "B|B|4||9"},
    {"{% if x %}A{% elif y %}B{% else %}C{% endif %}",
     "{\"x\": 0, \"y\": \"s\"}", 0,
     "B"},
    {"{% if x %}A{% elif y %}B{% else %}C{% endif %}",
     "{\"x\": [], \"y\": \"\"}", 0,
     "C"},
    {"{% if x %}A{% endif %}{% if not x %}N{% endif %}",
     "{\"x\": {}}", 0,
     "N"},
    {"{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}:{{ x }};{% endfor %}",
     "{\"xs\": [\"a\", \"b\", \"c\"]}", 0,
     "10TrueFalse332:a;21FalseFalse321:b;32FalseTrue310:c;"},
    {"{% for x in xs %}[{{ loop.previtem }}|{{ x }}|{{ loop.nextitem }}]{% endfor %}",
     "{\"xs\": [1, 2, 3]}", 0,
     "[|1|2][1|2|3][2|3|]"},
    {"{% for x in xs %}{{ x }}{% else %}empty{% endfor %}",
     "{\"xs\": []}", 0,
     "empty"},
    {"{% for x in xs %}{{ x }}{% else %}empty{% endfor %}",
     "{}", 0,
     "empty"},
    {"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
     "{\"d\": {\"b\": 1, \"a\": 2}}", 0,
     "b=1;a=2;"},
    {"{% for k in d %}{{ k }};{% endfor %}{% for v in d.values() %}{{ v }};{% endfor %}{{ d.keys() | list }}",
     "{\"d\": {\"b\": 1, \"a\": 2}}", 0,
     "b;a;1;2;['b', 'a']"},
    {"{% for x in xs if x > 1 %}{{ x }}{{ loop.last }}{{ loop.length }};{% endfor %}",
     "{\"xs\": [1, 2, 3]}", 0,
     "2False2;3True2;"},
    {"{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}",
     "{\"xs\": [1, 2, 3, 4, 5]}", 0,
     "13"},
    {"{% for c in 'h\303\251j' %}[{{ c }}]{% endfor %}",
     "{}", 0,
     "[h][\303\251][j]"},
    {"{% for i in range(3) %}{{ i }}{% endfor %}|{% for i in range(1, 10, 3) %}{{ i }}{% endfor %}|{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}",
     "{}", 0,
     "012|147|531"},
    {"{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + 10 %}{{ x }};{% endfor %}{{ x }}",
     "{}", 0,
     "11;11;1"},
    {"{% set ns = namespace(n=0, s='') %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }}|{{ ns.s }}",
     "{}", 0,
     "6|123"},
    {"{% set x %}inner {{ 1 + 1 }}{% endset %}[{{ x }}]",
     "{}", 0,
     "[inner 2]"},
    {"{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }}|{{ greet('B', '?') }}|{{ greet(punct='.', name='C') }}",
     "{}", 0,
     "Hi A!|Hi B?|Hi C."},
    {"{% macro f(x) %}{% if x > 0 %}{{ x }}{{ f(x - 1) }}{% endif %}{% endmacro %}{{ f(3) }}",
     "{}", 0,
     "321"},
    {"{% set y = 5 %}{% macro f() %}{{ y }}{% endmacro %}{% set y = 6 %}{{ f() }}",
     "{}", 0,
     "6"},
    {"{# comment #}a{# multi\nline #}b",
     "{}", 0,
     "ab"},
    {"a  {{- ' b ' -}}  c\n{%- if true %}  d  {% endif -%}\n e",
     "{}", 0,
     "a b c  d  e"},
    {"<{% if true %}\n  x\n{% endif %}\n>",
     "{}", 0,
     "<\n  x\n\n>"},
    {"<{% if true %}\n  x\n{% endif %}\n>",
     "{}", 1,
     "<  x\n>"},
    {"  {% for i in [1, 2] %}\n    item {{ i }}\n  {% endfor %}\ndone",
     "{}", 1,
     "    item 1\n    item 2\ndone"},
    {"  {% for i in [1, 2] %}\n    item {{ i }}\n  {% endfor %}\ndone",
     "{}", 0,
     "  \n    item 1\n  \n    item 2\n  \ndone"},
    {"a\n  {#- c #}\n b {{ 1 }}  \n  {% if 1 %}x{% endif %}",
     "{}", 1,
     "a b 1  \nx"},
    {"  {%+ if true %}k{% endif +%}\nz",
     "{}", 1,
     "  k\nz"},
    {"{{ 1 if x else 2 }}|{{ 1 if y else 2 }}|{{ 'a' if x }}|",
     "{\"x\": false, \"y\": 1}", 0,
     "2|1||"},
    {"{{ x and y }}|{{ x or y }}|{{ 0 or '' or 'z' }}|{{ 1 and 2 }}|{{ not 0 and 1 }}",
     "{\"x\": 0, \"y\": 3}", 0,
     "0|3|z|2|1"},
    {"{{ 1 == 1.0 }}{{ 1 != 2 }}{{ 1 < 2 }}{{ 'a' < 'b' }}{{ 2 >= 2 }}{{ 3 <= 2 }}{{ [1, 2] == [1, 2] }}{{ {'a': 1} == {'a': 1} }}",
     "{}", 0,
     "TrueTrueTrueTrueTrueFalseTrueTrue"},
    {"{{ 'a' in 'cat' }}{{ 'z' not in 'cat' }}{{ 1 in [1, 2] }}{{ 'k' in {'k': 1} }}{{ 3 not in [1] }}",
     "{}", 0,
     "TrueTrueTrueTrueTrue"},
    {"{{ x is none }}{{ x is not none }}{{ s is string }}{{ n is number }}{{ n is integer }}{{ f is float }}{{ d is mapping }}{{ l is iterable }}{{ l is sequence }}{{ s is mapping }}",
     "{\"x\": null, \"s\": \"t\", \"n\": 3, \"f\": 1.5, \"d\": {}, \"l\": []}", 0,
     "TrueFalseTrueTrueTrueTrueTrueTrueTrueFalse"},
    {"{{ t is true }}{{ t is false }}{{ t is boolean }}{{ n is boolean }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby(3) }}{{ u is iterable }}{{ d is iterable }}",
     "{\"t\": true, \"n\": 1, \"d\": {}}", 0,
     "TrueFalseTrueFalseTrueTrueTrueTrueTrue"},
    {"{{ 'a' is eq('a') }}{{ 3 is gt(2) }}{{ 3 is lt 2 }}{{ 'x' is in(['x']) }}{{ 'ab' is lower }}{{ 'AB' is upper }}",
     "{}", 0,
     "TrueTrueFalseTrueTrueTrue"},
    {"{{ obj | tojson }}",
     "{\"obj\": {\"a\": [1, 2.5, null, true], \"s\": \"\303\251\\n\\\"q\\\"\", \"n\": {}}}", 0,
     "{\"a\": [1, 2.5, null, true], \"s\": \"\303\251\\n\\\"q\\\"\", \"n\": {}}"},
    {"{{ obj | tojson(ensure_ascii=True) }}",
     "{\"obj\": {\"s\": \"\303\251\360\237\230\200\\u0001\"}}", 0,
     "{\"s\": \"\\u00e9\\ud83d\\ude00\\u0001\"}"},
    {"{{ obj | tojson(indent=2) }}",
     "{\"obj\": {\"a\": [1, {\"b\": []}], \"c\": \"d\"}}", 0,
     "{\n  \"a\": [\n    1,\n    {\n      \"b\": []\n    }\n  ],\n  \"c\": \"d\"\n}"},
    {"{{ obj | tojson(separators=(',', ':')) }}|{{ obj | tojson(sort_keys=True) }}",
     "{\"obj\": {\"b\": [1, 2], \"a\": 1}}", 0,
     "{\"b\":[1,2],\"a\":1}|{\"a\": 1, \"b\": [1, 2]}"},
    {"{{ ' x ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ s | length }}|{{ l | length }}|{{ l | count }}|{{ d | length }}",
     "{\"s\": \"h\303\251llo\", \"l\": [1, 2], \"d\": {\"a\": 1}}", 0,
     "x|a|5|2|2|1"},
    {"{{ l | join(', ') }}|{{ l | join }}|{{ users | join(',', attribute='name') }}",
     "{\"l\": [1, \"a\", null], \"users\": [{\"name\": \"x\"}, {\"name\": \"y\"}]}", 0,
     "1, a, None|1aNone|x,y"},
    {"{{ u | default('dflt') }}|{{ '' | default('e') }}|{{ '' | default('e', true) }}|{{ none | d('n') }}|{{ x | d(5) }}",
     "{\"x\": 0}", 0,
     "dflt||e|None|0"},
    {"{{ 'Hello World' | upper }}|{{ 'Hello World' | lower }}|{{ 'hello wORLD' | title }}|{{ 'hello wORLD' | capitalize }}",
     "{}", 0,
     "HELLO WORLD|hello world|Hello World|Hello world"},
    {"{{ l | first }}|{{ l | last }}|{{ 'abc' | first }}|{{ [] | first }}|{{ 'abc' | list }}|{{ d | list }}",
     "{\"l\": [1, 2, 3], \"d\": {\"k\": 1, \"j\": 2}}", 0,
     "1|3|a||['a', 'b', 'c']|['k', 'j']"},
    {"{{ 5 | string }}{{ (5 | string) is string }}|{{ '42' | int + 1 }}|{{ 'x' | int }}|{{ 3.9 | int }}|{{ '2.5' | float }}|{{ 'y' | int(7) }}",
     "{}", 0,
     "5True|43|0|3|2.5|7"},
    {"{{ '<b>' | safe }}|{{ d | items | list }}|{{ 'a-b-c' | replace('-', '+') }}|{{ 'aaa' | replace('a', 'b', 2) }}",
     "{\"d\": {\"a\": 1}}", 0,
     "<b>|[('a', 1)]|a+b+c|bba"},
    {"{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}|{{ ms | rejectattr('role', 'eq', 'user') | list | length }}|{{ ms | selectattr('tool') | list | length }}",
     "{\"ms\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"bot\", \"content\": \"b\", \"tool\": 1}, {\"role\": \"user\", \"content\": \"c\"}]}", 0,
     "a,c|1|1"},
    {"{{ [3, 1, 3, 2, 1] | unique | list }}|{{ ['a', 'B'] | map('upper') | list }}|{{ [1, 2, 3] | select('odd') | list }}|{{ [1, 2, 3] | reject('odd') | list }}|{{ [1, 2] | reverse | list }}|{{ 'abc' | reverse }}",
     "{}", 0,
     "[3, 1, 2]|['A', 'B']|[1, 3]|[2]|[2, 1]|cba"},
    {"{{ [1, 2, 3] | sum }}|{{ [3, 1, 2] | min }}|{{ [3, 1, 2] | max }}|{{ -3 | abs }}|{{ 'a b  c' | wordcount }}|{{ '<a href=\"x\">&' | escape }}",
     "{}", 0,
     "6|1|3|3|3|&lt;a href=&#34;x&#34;&gt;&amp;"},
    {"{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(4, true) }}",
     "{}", 0,
     "a\n  b\n\n  c|    a\n    b"},
    {"{{ ' a b  c '.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a,b,c'.split(',', 1) }}|{{ '  x  '.strip() }}|{{ '  x  '.lstrip() }}|{{ '  x  '.rstrip() }}|{{ 'xyx'.strip('x') }}",
     "{}", 0,
     "['a', 'b', 'c']|['a', 'b', '', 'c']|['a', 'b,c']|x|x  |  x|y"},
    {"{{ 'hello'.startswith('he') }}{{ 'hello'.endswith('lo') }}{{ 'hello'.startswith(('x', 'h')) }}|{{ 'a.b.c'.replace('.', '/') }}|{{ 'AbC'.upper() }}{{ 'AbC'.lower() }}|{{ 'ab cd'.title() }}",
     "{}", 0,
     "TrueTrueTrue|a/b/c|ABCabc|Ab Cd"},
    {"{{ '{} and {}'.format(1, 'x') }}|{{ '{1}{0}'.format('a', 'b') }}|{{ '{n}!'.format(n=3) }}|{{ 'abcb'.find('b') }}|{{ 'abcb'.count('b') }}|{{ '-'.join(['a', 'b']) }}",
     "{}", 0,
     "1 and x|ba|3!|1|2|a-b"},
    {"{{ d.get('a') }}|{{ d.get('z') }}|{{ d.get('z', 'dflt') }}|{{ d.items() | list }}|{{ d.keys() | list }}|{{ d.values() | list }}",
     "{\"d\": {\"a\": 1, \"b\": 2}}", 0,
     "1|None|dflt|[('a', 1), ('b', 2)]|['a', 'b']|[1, 2]"},
    {"{{ \"it's\" }}|{{ 'say \"x\"' }}|{{ 'tab\\there' }}|{{ 'nl\\nx' }}|{{ '\\u00e9\\x41' }}|{{ 'a' 'b' }}",
     "{}", 0,
     "it's|say \"x\"|tab\there|nl\nx|\303\251A|ab"},
    {"{{ 10 - 2 - 3 }}|{{ 2 * 3 + 4 }}|{{ -2 ** 2 }}|{{ (-2) ** 2 }}|{{ 2 ** -1 }}|{{ -x }}|{{ +x }}",
     "{\"x\": 4}", 0,
     "5|10|4|4|0.5|-4|4"},
    {"{{ messages[0].content }}{{ messages[loop_i - 1].role }}",
     "{\"messages\": [{\"role\": \"a\", \"content\": \"c\"}], \"loop_i\": 0}", 0,
     "ca"},
    {"{{ 'x' ~ [1, 'y'] }}|{{ 1.0 }}|{{ 100000000000000000.0 }}|{{ 1e16 }}|{{ 123456789012345.6 }}|{{ 0.0001 }}|{{ 0.00001 }}",
     "{}", 0,
     "x[1, 'y']|1.0|1e+17|1e+16|123456789012345.6|0.0001|1e-05"},
    {"{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }};{% endfor %}{% for a, b in pairs %}{{ a }}{{ b }}{% endfor %}",
     "{\"pairs\": [[\"x\", \"y\"]]}", 0,
     "3;7;xy"},
    {"{%- for m in messages -%}\n{{ m.role }}: {{ m.content }}\n{% endfor -%}\nEND",
     "{\"messages\": [{\"role\": \"u\", \"content\": \"hi\"}, {\"role\": \"a\", \"content\": \"yo\"}]}", 1,
     "u: hi\na: yo\nEND"},
    {"{% generation %}gen{% endgeneration %}|{{ strftime_now is defined }}|{{ raise_exception is defined }}",
     "{}", 1,
     "gen|True|True"},
    {"{{ bos_token }}{% for m in messages %}{{ m['role'] | upper }}{% if not loop.last %},{% endif %}{% endfor %}",
     "{\"bos_token\": \"<s>\", \"messages\": [{\"role\": \"a\"}, {\"role\": \"b\"}]}", 1,
     "<s>A,B"},
    {"{% set content = '<think>r</think>ans' %}{{ content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}|{{ content.split('</think>')[-1] }}",
     "{}", 1,
     "r|ans"},
    {"{{ x | tojson }}|{{ y | tojson }}|{{ 'a' if 1 is integer else 'b' }}|{{ true is integer }}",
     "{\"x\": 12345678901234, \"y\": -0.5}", 0,
     "12345678901234|-0.5|a|False"},
    {"{% if a is defined and a.b is defined %}Y{% else %}N{% endif %}|{% if c.d is not defined %}U{% endif %}",
     "{\"a\": {\"b\": null}}", 0,
     "Y|U"},
    {"{{ [1, 2, 3][1:] | length }}|{{ 'abc'[1] }}|{{ d['k'][0] }}|{{ [[1, 2], [3]] | map('length') | list }}",
     "{\"d\": {\"k\": \"xyz\"}}", 0,
     "2|b|x|[2, 1]"},
    {"{{ dict(a=1, b='x') }}|{{ namespace(a=1).a }}",
     "{}", 0,
     "{'a': 1, 'b': 'x'}|1"},
    {"{{ 1 < 2 < 3 }}{{ 1 < 3 < 2 }}{{ 3 > 2 == 2 }}{{ 'a' in 'abc' in ['abc'] }}|{{ (1 < 2) < 3 }}",
     "{}", 0,
     "TrueFalseTrueTrue|True"},
    {"line\n",
     "{}", 0,
     "line"},
    {"line\n\n",
     "{}", 1,
     "line\n"},
    {"{{ \"it's a-b (c) [d] {e} <f>\" | title }}|{{ \"it's a-b\".title() }}",
     "{}", 0,
     "It's A-B (C) [D] {E} <F>|It'S A-B"},
    {"{{ false | selectattr('x') | list }}|{{ none | map(attribute='x') | list }}|{{ u is sequence }}|{{ [u, 1] }}",
     "{}", 0,
     "[]|[]|True|[Undefined, 1]"},
    {"{% for i in [1,2] %}[{{ x }}]{% if i == 1 %}{% set x = 5 %}{% endif %}{% endfor %}|{% for i in [1, 2] %}{% for j in [1] %}[{{ x }}]{% endfor %}{% set x = 5 %}{% endfor %}",
     "{\"x\": \"a\"}", 0,
     "[a][a]|[][]"},
    {"{% for i in [1] %}[{{ s }}]{% endfor %}{% set s = 'b' %}{{ s }}|{% macro m() %}[{{ s }}]{% endmacro %}{{ m() }}{% set s = 'c' %}{{ m() }}",
     "{\"s\": \"S\"}", 0,
     "[]b|[b][c]"},
    {"{% for i in [1] %}[{{ s }}]{% endfor %}{% set s = s ~ '!' %}{{ s }}|{% if false %}{% set t = 1 %}{% endif %}{% for i in [1] %}[{{ t }}]{% endfor %}",
     "{\"s\": \"S\", \"t\": \"T\"}", 0,
     "[S]S!|[T]"},
    {"{% for i in [1] %}{% macro m() %}[{{ x }}]{% endmacro %}{{ m() }}{% set x = 9 %}{{ m() }}{% endfor %}|{% macro n() %}[{{ x }}]{% set x = 3 %}[{{ x }}]{% endmacro %}{{ n() }}",
     "{\"x\": \"a\"}", 0,
     "[][9]|[a][3]"},
    {"{% for i in range(true) %}{{ i }}{% endfor %}",
     "{}", 0,
     "0"},
    {"{{ ['a', 'A', 'b', 'B', 'a'] | unique | list }}|{{ ['a', 'A'] | unique(case_sensitive=true) | list }}",
     "{}", 0,
     "['a', 'b']|['a', 'A']"},
};

// Renders tmpl with vars; returns the output (caller frees) or NULL with err.
static char *s_render(const char *tmpl, const char *vars, int hf, char *err, size_t err_len, int *rc_out) {
    mesh_tmpl_opts_t o = {.trim_blocks = hf != 0, .lstrip_blocks = hf != 0};
    mesh_tmpl_t *t = mesh_tmpl_new_opts(tmpl, strlen(tmpl), &o, err, err_len);
    if (!t) {
        if (rc_out)
            *rc_out = -1000;
        return NULL;
    }
    mesh_json_t *v = NULL;
    if (vars && mesh_json_parse(vars, strlen(vars), &v, err, err_len)) {
        mesh_tmpl_destroy(&t);
        return NULL;
    }
    char *out = NULL;
    int rc = mesh_tmpl_render(t, v, &out, NULL, err, err_len);
    if (rc_out)
        *rc_out = rc;
    mesh_json_destroy(&v);
    mesh_tmpl_destroy(&t);
    assert_null(t);
    return out;
}

static void test_constructs_match_jinja(void **state) {
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        char err[256] = "";
        char *got = s_render(s_cases[i].tmpl, s_cases[i].vars, s_cases[i].hf, err, sizeof err, NULL);
        if (!got) {
            fprintf(stderr, "case %zu: error: %s\n  template: %s\n", i, err, s_cases[i].tmpl);
            failures++;
            continue;
        }
        if (strcmp(got, s_cases[i].want)) {
            fprintf(stderr, "case %zu:\n  template: %s\n  got:  [%s]\n  want: [%s]\n", i,
                    s_cases[i].tmpl, got, s_cases[i].want);
            failures++;
        }
        free(got);
    }
    assert_int_equal(failures, 0);
}

// Compile errors name the problem and the line.
static void s_expect_compile_error(const char *tmpl, const char *needle) {
    char err[256] = "";
    mesh_tmpl_t *t = mesh_tmpl_new(tmpl, err, sizeof err);
    if (t || !strstr(err, needle))
        fprintf(stderr, "template [%s]: expected a compile error with '%s', got '%s'\n", tmpl, needle, err);
    assert_null(t);
    assert_non_null(strstr(err, needle));
}

static void test_compile_errors(void **state) {
    (void)state;
    s_expect_compile_error("a\n{% if x %}b", "template line 2: unclosed 'if'");
    s_expect_compile_error("{% for x in y %}", "unclosed 'for'");
    s_expect_compile_error("a\nb\n{{ x | nosuchfilter }}", "template line 3: unknown filter 'nosuchfilter'");
    s_expect_compile_error("{% if x is nosuchtest %}{% endif %}", "unknown test 'nosuchtest'");
    s_expect_compile_error("{{ x ", "unclosed '{{' tag");
    s_expect_compile_error("x\n\n\n{% if %}{% endif %}", "template line 4: unexpected '%}'");
    s_expect_compile_error("{{ 1 + }}", "unexpected '}}'");
    s_expect_compile_error("{% endif %}", "unexpected 'endif'");
    s_expect_compile_error("{% include 'x.j2' %}", "unsupported tag 'include'");
    s_expect_compile_error("{% raw %}x{% endraw %}", "unsupported tag 'raw'");
    s_expect_compile_error("{# never closed", "unclosed comment");
    s_expect_compile_error("{{ 'abc }}", "unterminated string literal");
    s_expect_compile_error("{{ a b }}", "expected '}}'");
    s_expect_compile_error("{{ x ! y }}", "unexpected character '!'");
    s_expect_compile_error("{% for x in xs recursive %}{% endfor %}", "recursive");
    s_expect_compile_error("{{ 99999999999999999999 }}", "does not fit");
    s_expect_compile_error("{% set a, b = 1, 2 %}", "tuple assignment");
    s_expect_compile_error("{% macro m(x %}{% endmacro %}", "unclosed '{%' tag");
    s_expect_compile_error("{% macro m(x, 1) %}{% endmacro %}", "parameter name expected");
    char err[64];
    assert_null(mesh_tmpl_new(NULL, err, sizeof err));
}

static void s_expect_render_error(const char *tmpl, const char *vars, const char *needle) {
    char err[256] = "";
    int rc = 0;
    char *out = s_render(tmpl, vars, 1, err, sizeof err, &rc);
    if (out || !strstr(err, needle))
        fprintf(stderr, "template [%s]: expected a render error with '%s', got '%s' (out=%s)\n", tmpl,
                needle, err, out ? out : "NULL");
    assert_null(out);
    assert_true(rc < 0 && rc != -1000);
    assert_non_null(strstr(err, needle));
}

static void test_render_errors(void **state) {
    (void)state;
    s_expect_render_error("a\n{{ raise_exception('Only user and assistant roles!') }}", NULL,
                          "template line 2: raise_exception: Only user and assistant roles!");
    s_expect_render_error("{{ 1 + 'a' }}", NULL, "unsupported operand types for +: int and string");
    s_expect_render_error("{{ 1 // 0 }}", NULL, "division or modulo by zero");
    s_expect_render_error("{{ 1 / 0 }}", NULL, "division by zero");
    s_expect_render_error("{% for x in 5 %}{% endfor %}", NULL, "cannot iterate over a value of type int");
    s_expect_render_error("{% for x in none %}{% endfor %}", NULL, "cannot iterate over none");
    s_expect_render_error("{{ nosuchfn(1) }}", NULL, "'nosuchfn' is undefined, not a function");
    s_expect_render_error("{{ x.nosuchmethod() }}", "{\"x\": \"s\"}", "string has no method 'nosuchmethod'");
    s_expect_render_error("{% set x = 1 %}{% set x.a = 2 %}", NULL, "not a namespace");
    s_expect_render_error("{{ 9223372036854775807 + 1 }}", NULL, "integer overflow");
    s_expect_render_error("{{ 2 ** 63 }}", NULL, "integer overflow");
    s_expect_render_error("{{ [1][::0] }}", NULL, "slice step cannot be zero");
    s_expect_render_error("{{ x | tojson }}", NULL, "not JSON serializable");
    s_expect_render_error("{{ l.append(1) }}", "{\"l\": []}", "would modify a list");
    s_expect_render_error("{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}", NULL, "nested deeper than");
    s_expect_render_error("{% macro f(a) %}{% endmacro %}{{ f(1, 2) }}", NULL, "takes 1 arguments, 2 given");
    s_expect_render_error("{{ 'x' * 100000000 }}", NULL, "too large");
    {
        char err[128];
        char *o = s_render("[{{ '' * 1000000000000000000 }}{{ [] * 1000000000000000000 }}]", NULL, 1, err,
                           sizeof err, NULL);
        assert_non_null(o);
        assert_string_equal(o, "[[]]");
        free(o);
        o = s_render("{{ 1 ** 1000000000000000000 }}|{{ (-1) ** 1000000000000000001 }}|{{ 3 ** 39 }}|{{ (-2) ** 63 }}",
                     NULL, 1, err, sizeof err, NULL);
        assert_non_null(o);
        assert_string_equal(o, "1|-1|4052555153018976267|-9223372036854775808");
        free(o);
    }
    s_expect_render_error("{% for i in range(100000000) %}{% endfor %}", NULL, "range() of more than");
    s_expect_render_error("{{ 'a' < 1 }}", NULL, "unsupported operand types for ordering");
    s_expect_render_error("{% break %}", NULL, "outside a loop");
    // Bad variables object.
    mesh_tmpl_t *t = mesh_tmpl_new("x", NULL, 0);
    assert_non_null(t);
    mesh_json_t *arr = mesh_json_new_array();
    char *out = (char *)1, err[128];
    assert_int_equal(mesh_tmpl_render(t, arr, &out, NULL, err, sizeof err), MESH_EINVAL);
    assert_null(out);
    assert_non_null(strstr(err, "JSON object"));
    mesh_json_destroy(&arr);
    mesh_tmpl_destroy(&t);
}

static mesh_json_t *s_json(const char *s) {
    mesh_json_t *j = NULL;
    char err[128];
    if (mesh_json_parse(s, strlen(s), &j, err, sizeof err))
        fprintf(stderr, "bad test JSON: %s\n", err);
    assert_non_null(j);
    return j;
}

static void test_render_chat(void **state) {
    (void)state;
    const char *src =
        "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}"
        "{% for tc in m.tool_calls %}{% set f = tc.function %}[{{ f.name }}"
        "{% for k, v in f.arguments.items() %} {{ k }}={{ v | tojson }}{% endfor %}]{% endfor %}"
        "{% endfor %}{% if tools %}T{{ tools | length }}{% endif %}"
        "{% if add_generation_prompt %}<a>{% endif %}"
        "{{ 'think' if enable_thinking is not defined or enable_thinking else 'nothink' }}"
        "{{ eos_token }}{{ extra_var }}";
    char err[256];
    mesh_tmpl_t *t = mesh_tmpl_new(src, err, sizeof err);
    assert_non_null(t);
    mesh_json_t *msgs = s_json(
        "[{\"role\":\"user\",\"content\":\"hi\"},"
        "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"type\":\"function\",\"function\":"
        "{\"name\":\"f\",\"arguments\":\"{\\\"a\\\": 1, \\\"b\\\": \\\"x\\\"}\"}}]}]");
    mesh_json_t *tools = s_json("[{\"type\":\"function\"}]");
    mesh_json_t *extra = s_json("{\"extra_var\": \"!\"}");
    mesh_tmpl_chat_t c = {.messages = msgs, .tools = tools, .add_generation_prompt = true,
                          .enable_thinking = -1, .bos_token = "<s>", .eos_token = "</s>",
                          .extra = extra};
    char *out = NULL;
    size_t n = 0;
    assert_int_equal(mesh_tmpl_render_chat(t, &c, &out, &n, err, sizeof err), 0);
    assert_string_equal(out, "<s><user>hi<assistant>[f a=1 b=\"x\"]T1<a>think</s>!");
    assert_int_equal(n, strlen(out));
    free(out);
    // enable_thinking false, no tools, no generation prompt, no bos/eos.
    c.enable_thinking = 0;
    c.tools = NULL;
    c.add_generation_prompt = false;
    c.bos_token = c.eos_token = NULL;
    c.extra = NULL;
    assert_int_equal(mesh_tmpl_render_chat(t, &c, &out, NULL, err, sizeof err), 0);
    assert_string_equal(out, "<user>hi<assistant>[f a=1 b=\"x\"]nothink");
    free(out);
    // Arguments kept as a string: .items() on a string is an error, not a silent prompt.
    c.keep_string_arguments = true;
    assert_true(mesh_tmpl_render_chat(t, &c, &out, NULL, err, sizeof err) < 0);
    assert_null(out);
    assert_non_null(strstr(err, "items"));
    // messages must be an array.
    c.messages = extra;
    assert_int_equal(mesh_tmpl_render_chat(t, &c, &out, NULL, err, sizeof err), MESH_EINVAL);
    assert_non_null(strstr(err, "messages must be a JSON array"));
    mesh_json_destroy(&msgs);
    mesh_json_destroy(&tools);
    mesh_json_destroy(&extra);
    mesh_tmpl_destroy(&t);
}

static void test_limits(void **state) {
    (void)state;
    // Deep expression nesting is a compile error, not a stack overflow.
    size_t depth = 5000;
    char *src = malloc(depth * 2 + 16);
    size_t k = 0;
    memcpy(src + k, "{{ ", 3), k += 3;
    for (size_t i = 0; i < depth; i++)
        src[k++] = '(';
    src[k++] = '1';
    for (size_t i = 0; i < depth; i++)
        src[k++] = ')';
    memcpy(src + k, " }}", 4);
    char err[256];
    mesh_tmpl_t *t = mesh_tmpl_new(src, err, sizeof err);
    assert_null(t);
    assert_non_null(strstr(err, "nested too deeply"));
    // Same for 'not not not ...' and unary minus chains.
    k = 0;
    memcpy(src + k, "{{ ", 3), k += 3;
    for (size_t i = 0; i < depth / 2; i++)
        src[k++] = '-';
    memcpy(src + k, "1 }}", 5);
    assert_null(mesh_tmpl_new(src, err, sizeof err));
    free(src);
    // Moderate nesting works.
    t = mesh_tmpl_new("{{ ((((((((((1)))))))))) + [[[[[2]]]]][0][0][0][0][0] }}", err, sizeof err);
    assert_non_null(t);
    char *out = NULL;
    assert_int_equal(mesh_tmpl_render(t, NULL, &out, NULL, err, sizeof err), 0);
    assert_string_equal(out, "3");
    free(out);
    mesh_tmpl_destroy(&t);
    // Output that doubles per loop level hits the output limit with an error.
    t = mesh_tmpl_new("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}"
                      "{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
                      err, sizeof err);
    assert_non_null(t);
    int rc = mesh_tmpl_render(t, NULL, &out, NULL, err, sizeof err);
    assert_true(rc < 0);
    assert_null(out);
    mesh_tmpl_destroy(&t);
    // Empty template renders to an empty string.
    t = mesh_tmpl_new("", err, sizeof err);
    assert_non_null(t);
    assert_int_equal(mesh_tmpl_render(t, NULL, &out, NULL, err, sizeof err), 0);
    assert_string_equal(out, "");
    free(out);
    mesh_tmpl_destroy(&t);
    mesh_tmpl_destroy(&t); // NULL-safe
}

static uint64_t s_rng = 0x9E3779B97F4A7C15ull;
static uint64_t s_rand(void) {
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

// Random and mutated templates: compile and render must return (with or
// without an error) and never crash or read out of bounds (run under ASan).
static void test_random_templates_do_not_crash(void **state) {
    (void)state;
    static const char *frags[] = {"{{", "}}", "{%", "%}", "{#", "#}", "-", "+", " if ", " for ",
                                  " in ", " endif ", " endfor ", " else ", " elif ", " set ", "=",
                                  " x ", " xs ", "(", ")", "[", "]", "{", "}", "'s'", "\"", "1", "|",
                                  " length ", " tojson ", ".", ",", ":", " is ", " not ", " defined ",
                                  " macro ", " endmacro ", "\n", "  ", "loop.index", " and ", " or ",
                                  "~", "*", "/", "%", "ns", "namespace(a=1)", " break ", "items()",
                                  " d ", "[::-1]", "raise_exception('e')", "é", "\\"};
    const char *vars = "{\"x\": [1, \"a\", {\"k\": null}], \"xs\": [\"p\", \"q\"], "
                       "\"d\": {\"a\": 1, \"b\": [true, 2.5]}, \"s\": \"str\"}";
    mesh_json_t *v = s_json(vars);
    char buf[512], err[256];
    int compiled = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 0;
        int parts = 1 + (int)(s_rand() % 24);
        for (int p = 0; p < parts; p++) {
            const char *f = frags[s_rand() % (sizeof frags / sizeof frags[0])];
            size_t fl = strlen(f);
            if (n + fl >= sizeof buf)
                break;
            memcpy(buf + n, f, fl);
            n += fl;
        }
        buf[n] = 0;
        mesh_tmpl_t *t = mesh_tmpl_new_opts(buf, n, NULL, err, sizeof err);
        if (!t) {
            assert_true(strlen(err) > 0);
            continue;
        }
        compiled++;
        char *out = NULL;
        int rc = mesh_tmpl_render(t, v, &out, NULL, err, sizeof err);
        assert_true(rc == 0 ? out != NULL : out == NULL);
        free(out);
        mesh_tmpl_destroy(&t);
    }
    // Mutations of a realistic template (bytes flipped, inserted, deleted).
    const char *base = s_cases[0].tmpl;
    for (size_t c = 0; c < sizeof s_cases / sizeof s_cases[0]; c++)
        if (strlen(s_cases[c].tmpl) > strlen(base))
            base = s_cases[c].tmpl;
    size_t bl = strlen(base);
    char *m = malloc(bl + 64);
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(m, base, bl);
        size_t n = bl;
        int edits = 1 + (int)(s_rand() % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)(s_rand() % (n + 1));
            int op = (int)(s_rand() % 3);
            if (op == 0 && at < n) {
                m[at] = (char)(s_rand() & 0xFF);
            } else if (op == 1 && n + 1 < bl + 64) {
                memmove(m + at + 1, m + at, n - at);
                m[at] = "{}%#-+()[]'\" |.\n"[s_rand() % 16];
                n++;
            } else if (at < n) {
                memmove(m + at, m + at + 1, n - at - 1);
                n--;
            }
        }
        mesh_tmpl_t *t = mesh_tmpl_new_opts(m, n, NULL, err, sizeof err);
        if (!t)
            continue;
        char *out = NULL;
        mesh_tmpl_render(t, v, &out, NULL, err, sizeof err);
        free(out);
        mesh_tmpl_destroy(&t);
    }
    free(m);
    mesh_json_destroy(&v);
    assert_true(compiled > 100); // the generator does produce valid templates too
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constructs_match_jinja),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_render_errors),
        cmocka_unit_test(test_render_chat),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_random_templates_do_not_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
