/* settings.h -- the superuser-only pgml.* / pgml_flow.* settings (settings.c). */
#ifndef PGML_NATIVE_SETTINGS_H
#define PGML_NATIVE_SETTINGS_H

extern void pgml_define_settings(void);

#endif
