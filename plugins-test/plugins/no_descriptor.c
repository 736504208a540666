/*
 * no_descriptor.c - a shared object without the upesi_plugin symbol.
 */
__attribute__((visibility("default"))) int not_a_plugin(void);
int not_a_plugin(void)
{
    return 42;
}
