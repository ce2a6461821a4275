#ifndef QDWALLET_CLIBXML2_SHIM_H
#define QDWALLET_CLIBXML2_SHIM_H

#include <libxml/xmlversion.h>
/* Debian's libxml2 is built with ICU, and its headers would then pull in ICU's, which clash
 * with the ICU that Foundation carries. Nothing here touches the ICU-dependent fields of
 * xmlCharEncodingHandler, so the headers are read without them. */
#undef LIBXML_ICU_ENABLED

#include <libxml/parser.h>
#include <libxml/xmlreader.h>
#include <libxml/xmlschemas.h>
#include <libxml/xmlschemastypes.h>
#include <libxml/xmlerror.h>

/* xmlFree is a global function pointer, which Swift 6 treats as shared mutable state. */
static inline void qdw_xml_free(void *pointer) {
    xmlFree(pointer);
}

/* A few libxml2 messages (an encoding converter failing inside xmlParseChunk) go to the
 * generic error handler, which prints to stderr, instead of the structured one. Their fault
 * also reaches the structured handler and the reader's result, so the printed copy is only
 * noise in the logs; this handler drops it. Swift cannot define a variadic C function. */
static inline void qdw_xml_ignore_generic_error(void *context, const char *message, ...) {
    (void)context;
    (void)message;
}

static inline void qdw_xml_quiet_generic_errors(void) {
    xmlSetGenericErrorFunc(NULL, qdw_xml_ignore_generic_error);
}

#endif
