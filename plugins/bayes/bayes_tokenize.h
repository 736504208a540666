/*
 * bayes_tokenize.h - the words of a message, as the bayes filter sees them.
 *
 * A message (RFC 5322 bytes) is parsed with GMime 3 and turned into a
 * stream of UTF-8 tokens, grouped in fields: each signal header is one
 * field (its tokens prefixed by the header's name, "subject:free"), each
 * text part is one field (HTML reduced to text), and the hosts of links
 * are tokens of their own ("url:example.com").  The features module makes
 * bigrams only inside a field, so a field ends with a call of fn with
 * tok NULL.
 *
 * Nothing here fails on a broken message: what GMime cannot read is not
 * there.  At most BAYES_MAX_TEXT bytes of decoded text per message and
 * BAYES_MAX_PARTS parts are looked at, so a hostile message costs bounded
 * time.  Returns 0, or -ENOMEM.
 */
#ifndef BAYES_TOKENIZE_H
#define BAYES_TOKENIZE_H

#include <stddef.h>

#define BAYES_MAX_TEXT (256 * 1024)  /* decoded text tokenized per message */
#define BAYES_MAX_PARTS 100
#define BAYES_MAX_DEPTH 16
#define BAYES_MIN_TOKEN 2            /* bytes                              */
#define BAYES_MAX_TOKEN 15           /* longer: "sk:" + first 7 (as SA)    */

/* tok is NUL-terminated (len excludes the NUL) and valid during the call;
 * tok NULL ends a field. */
typedef void (*bayes_token_fn)(const char *tok, size_t len, void *arg);

/* Once per process, before any bayes_tokenize (g_mime_init), and its
 * undoing at the end (g_mime_shutdown; GMime counts both). */
void bayes_tokenize_init(void);
void bayes_tokenize_shutdown(void);

int bayes_tokenize(const char *msg, size_t len, bayes_token_fn fn, void *arg);

/* The word splitter alone, for text already in UTF-8 (the unit tests and
 * the header fields use it): prefix "" or "subject:" ... */
void bayes_tokenize_text(const char *text, size_t len, const char *prefix,
                         bayes_token_fn fn, void *arg);

/* HTML to text: tags dropped, script and style skipped, entities decoded,
 * block tags become line breaks; the host of every href/src URL is handed
 * to fn as "url:HOST", and its registered domain (the last two labels,
 * three under a short second level as co.uk) as another.  Returns a g_malloc'd
 * string the caller g_free()s. */
char *bayes_html_to_text(const char *html, size_t len, bayes_token_fn fn,
                         void *arg);

#endif
