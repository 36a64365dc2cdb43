/* Internal helpers shared by src/core (not part of the public API). */
#ifndef CSLIM_CORE_INTERNAL_H
#define CSLIM_CORE_INTERNAL_H

/* The progress bar owns the last line of stderr while it is drawn; the
 * logger asks it to clear that line before printing a message. */
void cslim__progress_clear_line(void);

#endif
